"""`visiontrain suggest DATA [--task ...] [--val DIR] [--json]`: settings suggested from the data, each with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from visiontrain.cli.common import check_data_and_task, console, fail, user_errors


def suggest(
    data: Path = typer.Argument(..., help="The training data, as for `visiontrain train`."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="classification, tagging or detection (default: as `visiontrain train` infers it)."),
    validation: Optional[Path] = typer.Option(None, "--val", help="A separate validation set (directory or CSV): left untouched."),
    assignments: list[str] = typer.Option([], "--set", "-s", help="A setting you have chosen already: name=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the suggestion as JSON (settings, reasons, questions, warnings, counts)."),
) -> None:
    """Suggest training settings for a dataset: split, batch size, fine-tuning, augmentation, each with its reason."""
    from visiontrain.assistant import counts_from_spec, suggest_settings
    from visiontrain.data.sources import infer_task, load_dataset
    from visiontrain.settings import load_settings, parse_assignment

    with user_errors():
        check_data_and_task(data, task)
        if validation is not None and not validation.exists():
            fail(f"validation data not found: {validation}")
        task = task or infer_task(data)
        overrides = dict(parse_assignment(a) for a in assignments)
        settings = load_settings(None, overrides, task=task)
        spec = load_dataset(data, validation, task=task)
        fixed = f"the validation set {validation}" if validation else "the dataset's own validation images"
        result = suggest_settings(counts_from_spec(spec, seed=settings.seed, fixed=fixed), overrides).as_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print(result, data)


def _print(result: dict[str, Any], data: Path) -> None:
    counts = result["counts"]
    table = Table(title=f"Suggested settings for {data} ({counts['task']})")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("why", overflow="fold")
    for name, value in result["settings"].items():
        table.add_row(name, json.dumps(value), result["reasons"].get(name, ""))
    for name, why in result["kept"].items():
        table.add_row(name, "[dim]kept[/]", why)
    console.print(table)
    sides = [f"{counts['train_images']} training, {counts['validation_images']} validation images ({counts['validation_set']})"]
    per_concept = ", ".join(f"{c} {n}/{counts['validation'].get(c, 0)}" for c, n in counts["train"].items())
    console.print(f"images: {sides[0]}; per concept (training/validation): {per_concept}", highlight=False)
    for question in result["questions"]:
        answers = "; ".join(f"{a['answer']}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in a["settings"].items())
                            for a in question["answers"])
        console.print(f"[bold]?[/] {question['question']} {answers}", highlight=False)
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    flags = " ".join(f"--set {k}={json.dumps(v)}" for k, v in result["settings"].items())
    console.print(f"train with: visiontrain train {data} --out RUN_DIR {flags}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("suggest", context_settings={"help_option_names": ["-h", "--help"]})(suggest)
