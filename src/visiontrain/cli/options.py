"""Command-line flags generated from TrainingSettings: one flag per setting, help text from its description.

Flags default to None ("not given"), so a settings file's values are only overridden by flags the
user actually typed (defaults < file < flags).
"""

from __future__ import annotations

import inspect
from enum import Enum
from typing import Any, Literal, Optional, Union, get_args, get_origin

import typer

from visiontrain.settings import TrainingSettings, parse_assignment


def _flag_type(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Union or str(origin) == "types.UnionType":
        options = [a for a in get_args(annotation) if a is not type(None)]
        if any(get_origin(a) is Literal for a in options):
            return str  # e.g. devices: int | "auto" → parsed by the settings model
        return _flag_type(options[0]) if len(options) == 1 else str
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    return annotation


def settings_parameters() -> list[inspect.Parameter]:
    parameters = []
    for name, info in TrainingSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = _flag_type(info.annotation)
        group = (info.json_schema_extra or {}).get("group", "Settings")  # type: ignore[union-attr]
        default = info.default.value if isinstance(info.default, Enum) else info.default
        help_text = f"{info.description} (default: {default})"
        if kind is bool:
            option = typer.Option(None, f"{flag}/--no-{name.replace('_', '-')}", help=help_text, rich_help_panel=group, show_default=False)
        else:
            option = typer.Option(None, flag, help=help_text, rich_help_panel=group, show_default=False)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind]))
    return parameters


def collect_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The settings flags the user gave (None = not given)."""
    overrides = {}
    for name in TrainingSettings.model_fields:
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, str) and _flag_type(TrainingSettings.model_fields[name].annotation) is str \
                and TrainingSettings.model_fields[name].annotation is not str:
            # A union flag (devices: int | "auto") arrives as text: read it as --set would (2 -> 2, auto -> "auto").
            value = parse_assignment(f"{name}={value}")[1]
        overrides[name] = value
    return overrides


def with_settings_flags(function: Any) -> Any:
    """Add every setting as a keyword-only flag to a Typer command function."""
    signature = inspect.signature(function)
    own = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    function.__signature__ = signature.replace(parameters=[*own, *settings_parameters()])
    return function
