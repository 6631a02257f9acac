"""`visiontrain sweep DATA --trials N --out DIR [--val DIR] [--task ...] [--seed S] [--settings FILE]`: try head settings on cached features."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from visiontrain.cli.common import check_data_and_task, console, fail, user_errors

TOP_ROWS = 10
# Short names of the searched settings in the table (the full names are trials.csv's header).
SHORT = {"learning_rate": "rate", "optimizer": "", "head_layers": "layers", "head_units": "units", "weight_decay": "decay",
         "augmented_copies": "copies", "balance_concepts": "balance", "label_smoothing": "smoothing"}


def sweep(
    data: Path = typer.Argument(..., help="The training data, as for `visiontrain train` (classification or tagging)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for trials.csv, sweep.json and best/ (the best trial as a normal run)."),
    trials: int = typer.Option(20, "--trials", "-n", min=1, max=1000, help="Head configurations to try."),
    validation: Optional[Path] = typer.Option(None, "--val", help="A separate validation set (directory or CSV)."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="classification or tagging (default: classification)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed of the search (default: the settings' seed); the same seed tries the same configurations."),
    settings_file: Optional[Path] = typer.Option(None, "--settings", "-c", help="Settings file (YAML or JSON): what the sweep does not search (epochs, backbone, ...)."),
    assignments: list[str] = typer.Option([], "--set", "-s", help="Override a base setting: name=value (repeatable)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache directory (as for train)."),
    cache_size_gb: Optional[float] = typer.Option(None, "--cache-size-gb", help="Size cap of the feature cache in GB (as for train)."),
) -> None:
    """Try N head configurations on the same cached features (Optuna, bad trials pruned early); keep the best as a run."""
    from visiontrain.settings import load_settings, parse_assignment
    from visiontrain.training.feature_store import FeatureCacheLocation
    from visiontrain.training.sweep import BEST_DIR, TRIALS_FILE, run_sweep

    with user_errors():
        check_data_and_task(data, task)
        overrides = dict(parse_assignment(a) for a in assignments)
        settings = load_settings(settings_file, overrides, task=task or "classification")
        cache = FeatureCacheLocation.resolve(cache_dir, size_gb=cache_size_gb)
        with console.status("preparing features…") as status:
            def progress(event: dict[str, Any]) -> None:
                if event["type"] == "features":
                    status.update(f"backbone features {event['done']}/{event['total']} ({event['cache_hits']} from cache)")
                elif event["type"] == "trial":
                    value = event.get(summary_monitor(task))
                    shown = f"{value:.4f}" if value is not None else "—"
                    console.print(f"trial {event['number']}: {event['state']} · {summary_monitor(task)} {shown}", highlight=False)
                    status.update(f"trials: {event['number'] + 1} of {trials} done")

            summary = run_sweep(data, out, trials=trials, settings=settings, seed=seed, task=task, validation_data=validation,
                                cache_dir=cache, callback=progress)
    _print(summary, out / TRIALS_FILE, out / BEST_DIR)


def summary_monitor(task: str | None) -> str:
    from visiontrain.tasks import get_task

    return get_task(task or "classification").monitor


def _print(summary: dict[str, Any], trials_file: Path, best_dir: Path) -> None:
    import csv

    from visiontrain.training.sweep import space_for

    monitor, task = summary["monitor"], summary["task"]
    with open(trials_file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    table = Table(title=f"Top trials by {monitor} ({len(rows)} tried: {summary['states']['complete']} complete, "
                        f"{summary['states']['pruned']} pruned, {summary['states']['failed']} failed)")
    searched = [d.name for d in space_for(task)]
    for column in ("#", "trial", "state", monitor.removeprefix("val_"), "epochs"):
        table.add_column(column, justify="left" if column == "state" else "right")
    table.add_column("settings tried", ratio=1)
    for row in rows[:TOP_ROWS]:
        tried = " · ".join(f"{SHORT.get(n, n)} {_num(row[n])}".strip() for n in searched if row.get(n) not in (None, ""))
        table.add_row(row["rank"], row["number"], row["state"], _num(row[monitor]), row["epochs"], tried)
    console.print(table)
    features = summary["counts"]
    console.print(f"backbone features: {features.get('cache_misses', 0)} computed, {features.get('cache_hits', 0)} from the cache; "
                  f"trials took {summary['timings']['trials']:.1f} s", highlight=False)
    if not summary.get("best_settings") and summary.get("best_trial") is None:
        fail("no trial completed, so there is no best setting (see trials.csv)", code=1)
    settings = summary["best_settings"]
    console.print("best settings (beyond the defaults): " + ", ".join(f"{k}={_num(v)}" for k, v in settings.items()), highlight=False)
    best_run = summary.get("best_run")
    if best_run:
        headline = best_run.get("headline") or {}
        value = headline.get("value")
        console.print(f"best run: [bold]{best_dir}[/] ({headline.get('name', monitor)} "
                      f"{value:.4f})" if value is not None else f"best run: {best_dir}", highlight=False)
    console.print(f"all trials: {trials_file}", highlight=False)


def _num(value: Any) -> str:
    if value in (None, ""):
        return "—"
    if isinstance(value, bool) or value in ("True", "False"):
        return "yes" if value in (True, "True") else "no"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number.is_integer() and "." not in str(value) and "e" not in str(value):
        return str(int(number))
    return f"{number:.3g}" if abs(number) < 0.01 else f"{number:.4f}".rstrip("0").rstrip(".")


def register(app: typer.Typer) -> None:
    app.command("sweep", context_settings={"help_option_names": ["-h", "--help"]})(sweep)
