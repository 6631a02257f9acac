"""`visiontrain train DATA --out RUN_DIR [--config FILE] [--set name=value ...] [--<setting> value ...]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from visiontrain.cli.common import check_data_and_task, console, user_errors
from visiontrain.cli.options import collect_overrides, with_settings_flags


@with_settings_flags
def train(
    data: Path = typer.Argument(..., help="classification: ImageFolder directory (class subfolders, optionally inside train/, val/, test/) or a CSV of path,label; tagging: a CSV of path,labels (joined by ';') or a COCO/YOLO/VOC folder; detection: a COCO/YOLO/Pascal VOC folder or a CSV of filename,class,xmin,ymin,xmax,ymax."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory for settings, metrics, checkpoint and evaluation."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Settings file (YAML or JSON); flags override it."),
    assignments: list[str] = typer.Option([], "--set", "-s", help="Override a setting: name=value (repeatable)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="What the model learns: classification (one class per image), tagging (any number of concepts per image) or detection (boxes around objects). Default: detection for data with boxes (COCO, YOLO, VOC, a boxes CSV), else classification."),
    validation: Optional[Path] = typer.Option(None, "--val", help="A separate validation set (directory or CSV)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache directory (default: the user cache directory, or $VISIONTRAIN_CACHE_DIR)."),
    cache_size_gb: Optional[float] = typer.Option(None, "--cache-size-gb", help="Size cap of the feature cache in GB; the least recently used features are evicted beyond it (default: $VISIONTRAIN_FEATURE_CACHE_GB, or 20)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    **flags: Any,
) -> None:
    """Train an image classifier, tagger or object detector by transfer learning."""
    from visiontrain.assistant.advice import advise_run_dir
    from visiontrain.cli.advise import print_advice
    from visiontrain.data.sources import infer_task
    from visiontrain.settings import load_settings, parse_assignment
    from visiontrain.training.feature_store import FeatureCacheLocation
    from visiontrain.training.runner import run_training

    with user_errors():
        check_data_and_task(data, task)
        task = task or infer_task(data)
        overrides = dict(parse_assignment(a) for a in assignments)
        overrides.update(collect_overrides(flags))
        settings = load_settings(config, overrides, task=task)
        cache = FeatureCacheLocation.resolve(cache_dir, size_gb=cache_size_gb)
        display = None if quiet else _Display(settings)
        try:
            summary = run_training(settings, data, out, task=task, validation_data=validation, cache_dir=cache, callback=display)
        finally:
            if display:
                display.close()
    _print_summary(summary, out)
    print_advice(advise_run_dir(out))
    if summary["status"] == "cancelled":
        raise typer.Exit(130)


class _Display:
    """One Rich display driven by the engine's events: a bar for feature extraction, one per
    training stage (epochs done, live loss and accuracy), and a line per epoch above them."""

    def __init__(self, settings: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.epochs = {"head": settings.epochs, "fine_tune": settings.fine_tune_epochs}
        self.progress = Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def _task(self, name: str, description: str, total: int) -> Any:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(description, total=total, info="")
        return self.tasks[name]

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "features":
            task = self._task("features", "backbone features", event["total"])
            self.progress.update(task, completed=event["done"], info=f"{event['cache_hits']} from cache")
        elif kind == "batch":
            task = self._task(event["stage"], _STAGE_NAMES[event["stage"]], self.epochs[event["stage"]])
            self.progress.update(task, info=f"epoch {event['epoch']} · loss {event['loss']:.4f}")
        elif kind == "epoch":
            task = self._task(event["stage"], _STAGE_NAMES[event["stage"]], self.epochs[event["stage"]])
            monitor = event["monitor"]
            self.progress.update(task, completed=event["epoch"], info=f"{_short(monitor)} {event[monitor]:.4f}")
            best = "  [green]best[/]" if event["best"] else ""
            others = "  ".join(f"{k} {v:.4f}" for k, v in event.items() if k.startswith("val_") and k not in (monitor, "val_loss"))
            self.progress.console.print(
                f"{_STAGE_NAMES[event['stage']]} epoch {event['epoch']:>3}: {monitor} {event[monitor]:.4f}  "
                f"val_loss {event['val_loss']:.4f}  {others + '  ' if others else ''}train_loss {event['train_loss'] or 0:.4f}  "
                f"lr {event['learning_rate']:.2e}{best}",
                highlight=False)
        elif kind == "stage" and event["status"] == "finished" and event["stage"] in self.tasks:
            task = self.tasks[event["stage"]]
            self.progress.update(task, total=self.progress.tasks[task].completed or 1)  # early stop: show it as done

    def close(self) -> None:
        self.progress.stop()


_STAGE_NAMES = {"head": "head", "fine_tune": "fine-tuning"}


def _short(metric: str) -> str:
    return metric.removeprefix("val_").replace("accuracy", "acc").replace("map", "mAP")


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    rejected = summary.get("rejected", [])
    if rejected:
        console.print(f"[yellow]{len(rejected)} file(s) left out:[/]")
        for item in rejected[:20]:
            console.print(f"  {item['path']}: {item['reason']}", highlight=False)
        if len(rejected) > 20:
            console.print(f"  ... and {len(rejected) - 20} more (see {out / 'summary.json'})")
    table = Table(title=f"Run {out} — {summary['status']}", show_header=False)
    best = summary.get("best_metrics", {})
    counts = summary.get("counts", {})
    test = f", {counts['test_images']} test" if counts.get("test_images") else ""
    rows = [
        ("task", summary.get("task", "classification")),
        ("classes" if summary.get("task", "classification") == "classification" else "concepts", ", ".join(summary.get("classes", []))),
        ("images", f"{counts.get('train_images', 0)} train, {counts.get('val_images', 0)} validation{test}, {counts.get('rejected', 0)} rejected"),
        ("outcome", summary.get("message", "")),
        ("best epoch", f"{summary.get('best_stage', '-')} {summary.get('best_epoch', '-')}"),
        *((name.replace("_", " "), f"{value:.4f}") for name, value in best.items() if name.startswith("val_")),
        *((f"test {name}", _number(value)) for name, value in summary.get("test", {}).items()
          if name in ("accuracy", "map", "map50", "loss")),
        ("body outputs", f"{counts.get('train_variants', 0)} training variants + {counts.get('val_images', 0)} validation images, "
                         "each through the frozen backbone once") if summary.get("task") == "detection" else
        ("feature cache", f"{counts.get('cache_hits', 0)} hits, {counts.get('cache_misses', 0)} computed"),
        ("time", ", ".join(f"{k} {v:.1f}s" for k, v in summary.get("timings", {}).items())),
    ]
    found = summary.get("learning_rate_found")
    if found:  # learning_rate auto: say what the range test chose, and why (lr_find.png beside the run)
        capped = f"; fine_tune_learning_rate capped at {found['fine_tune_learning_rate']:g}" if "fine_tune_learning_rate" in found else ""
        rows.insert(4, ("learning rate", f"{found['learning_rate']:g}, found by the range test: {found['reason']}{capped}"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _number(value: Any) -> str:
    if isinstance(value, dict):  # tagging's two accuracies
        return ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in value.items())
    return f"{value:.4f}"


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(train)
