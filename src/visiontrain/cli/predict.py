"""`visiontrain predict RUN_DIR IMAGE... [--json] [--top-k K] [--onnx]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from visiontrain.cli.common import console, fail, user_errors

EXIT_SOME_IMAGES_FAILED = 1


def predict(
    run_dir: Path = typer.Argument(..., help="Run directory (or its best.pt checkpoint; with --onnx also a .onnx file)."),
    images: list[Path] = typer.Argument(..., help="Image files (any format Pillow reads)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON list, one {path, predictions, error} per image."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Most probable labels shown per image (classification; a tagging model shows every concept)."),
    onnx: bool = typer.Option(False, "--onnx", help="Run with ONNX Runtime (exports model.onnx first if it is missing or stale)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward pass."),
) -> None:
    """Predict the labels of images: the most probable classes, or (tagging) every concept, on or off.

    An image that cannot be read is reported on its own row (or with an "error" in JSON) and the
    others are still predicted. Exit code: 0 when every image was predicted, 1 when at least one
    could not be read, 2 for a bad run directory or checkpoint.
    """
    from visiontrain.export import ExportError
    from visiontrain.predictor import Predictor

    with user_errors():
        try:
            predictor = Predictor.load(run_dir, backend="onnx" if onnx else "torch")
        except ExportError as exc:  # a foreign .onnx file, or an export that failed its check
            fail(str(exc))
        results = predictor.predict([str(path) for path in images], top_k=top_k, batch_size=batch_size)
    if json_output:
        typer.echo(json.dumps(results, indent=2))
    else:
        _print_table(results, predictor.backend_name, tagging=predictor.task.name == "tagging")
    if any(result["error"] for result in results):
        raise typer.Exit(EXIT_SOME_IMAGES_FAILED)


def _print_table(results: list[dict[str, Any]], backend: str, *, tagging: bool = False) -> None:
    table = Table(title=f"Predictions ({backend})")
    table.add_column("image", overflow="fold")
    table.add_column("concept" if tagging else "label")
    table.add_column("probability", justify="right")
    if tagging:
        table.add_column("threshold", justify="right")
        table.add_column("on", justify="center")
    for result in results:
        if result["error"]:
            table.add_row(escape(result["path"]), f"[red]{escape(result['error'])}[/]", "", *([""] * 2 * tagging), style="red")
            continue
        predictions = result["predictions"]
        labels = "\n".join(escape(p["label"]) for p in predictions)
        probabilities = "\n".join(f"{p['probability']:.4f}" for p in predictions)
        extra = []
        if tagging:
            extra = ["\n".join(f"{p['threshold']:.3f}" for p in predictions),
                     "\n".join("[green]on[/]" if p["on"] else "[dim]off[/]" for p in predictions)]
        table.add_row(escape(result["path"]), labels, probabilities, *extra, end_section=True)
    console.print(table)
    failed = sum(1 for result in results if result["error"])
    if failed:
        console.print(f"[red]{failed} of {len(results)} image(s) could not be read[/]")


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(predict)
