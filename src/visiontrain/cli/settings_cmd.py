"""`visiontrain settings`: every training setting with its default and meaning, grouped."""

from __future__ import annotations

import json
from enum import Enum

import typer
from rich.table import Table

from visiontrain.cli.common import console


def settings(
    as_json: bool = typer.Option(False, "--json", help="The JSON schema (what the API and the web form use)."),
    as_yaml: bool = typer.Option(False, "--yaml", help="A settings file with every default, to edit and pass to --config."),
) -> None:
    """Show every training setting with its default and what it does."""
    from visiontrain.settings import TrainingSettings

    if as_json:
        print(json.dumps(TrainingSettings.model_json_schema(), indent=2))
        return
    if as_yaml:
        print(TrainingSettings().to_yaml(), end="")
        return
    fields = TrainingSettings.model_fields
    for group, names in TrainingSettings.field_groups().items():
        table = Table(title=group, title_justify="left", show_lines=False, expand=True)
        table.add_column("setting", style="bold cyan", no_wrap=True)
        table.add_column("default", no_wrap=True)
        table.add_column("meaning")
        for name in names:
            default = fields[name].default
            default = default.value if isinstance(default, Enum) else default
            table.add_row(name, "(backbone's own)" if default is None else str(default), fields[name].description or "")
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command(name="settings")(settings)
