"""The `visiontrain` command. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="visiontrain",
    help="Train, evaluate, compare and serve computer-vision models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    import importlib

    for module in ("train", "lr_find", "suggest", "sweep", "advise", "evaluate", "predict", "settings_cmd", "export", "convert", "platform"):
        try:
            importlib.import_module(f"visiontrain.cli.{module}").register(app)
        except ModuleNotFoundError as exc:
            if exc.name != f"visiontrain.cli.{module}":
                raise


_register()

if __name__ == "__main__":
    app()
