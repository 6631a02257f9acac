"""What every command shares: a one-line error and a non-zero exit for bad input, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's input errors into one readable line and exit code 2."""
    from visiontrain.data.errors import DataError, ImageError
    from visiontrain.export import ExportError
    from visiontrain.models.backbones import BackboneError
    from visiontrain.models.checkpoint import CheckpointError
    from visiontrain.settings import SettingsError

    try:
        yield
    except SettingsError as exc:
        fail("bad settings:\n  " + str(exc).replace("\n", "\n  "))
    except (DataError, ImageError, CheckpointError, BackboneError, ExportError, FileNotFoundError) as exc:
        fail(str(exc))


def check_data_and_task(data: Path, task: str | None) -> None:
    """The dataset path exists and the task, when given, is one we have (a one-line error otherwise)."""
    from visiontrain.tasks import task_names

    if task is not None and task not in task_names():
        fail(f"unknown task {task!r}; choose one of: {', '.join(task_names())}")
    if not data.exists():
        fail(f"data not found: {data}")
