"""`visiontrain advise RUN_DIR [--json]`: what to try next after a run, from its own curves and evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.padding import Padding

from visiontrain.cli.common import console, fail, user_errors


def advise(
    run_dir: Path = typer.Argument(..., help="A run directory written by `visiontrain train --out`."),
    as_json: bool = typer.Option(False, "--json", help="Print the advice as JSON (items with evidence and settings to change)."),
) -> None:
    """Say what to try next after a run: each finding with its numbers and the settings to change."""
    from visiontrain.assistant.advice import advise_run_dir

    with user_errors():
        if not run_dir.is_dir():
            fail(f"run directory not found: {run_dir}")
        report = advise_run_dir(run_dir)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    print_advice(report)


def print_advice(report: Any) -> None:
    """The "What to try next" section: one numbered finding per rule, its evidence, and the flags to try."""
    console.print("\n[bold]What to try next[/]", highlight=False)
    if not report.items:
        console.print(f"  {report.reason[:1].upper()}{report.reason[1:]}.", highlight=False)
        return
    for number, item in enumerate(report.items, 1):
        console.print(Padding(f"[bold]{number}. {item.title}[/]", (0, 0, 0, 2), expand=False), highlight=False)
        lines = [f"[dim]evidence:[/] {item.evidence}"]
        if item.changes:
            lines.append(f"[green]try:[/] {flags(item.changes)}")
        lines.append(f"[dim]why:[/] {item.why}")
        for line in lines:  # wrapped lines stay under their label's indent
            console.print(Padding(line, (0, 0, 0, 5), expand=False), highlight=False)


def flags(changes: dict[str, Any]) -> str:
    """Settings as the `visiontrain train` flags that set them (`--fine-tune`, `--learning-rate 0.0001`)."""
    words = []
    for name, value in changes.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            words.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            words.append(f"--{flag} {value:g}" if isinstance(value, float) else f"--{flag} {value}")
    return " ".join(words)


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(advise)
