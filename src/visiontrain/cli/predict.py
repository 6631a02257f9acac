"""`visiontrain predict RUN_DIR IMAGE... [--json] [--top-k K] [--onnx] [--draw OUT]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from visiontrain.cli.common import console, fail, user_errors

EXIT_SOME_IMAGES_FAILED = 1
DRAWN_SUFFIX = ".png"
OTHER_PICTURE_SUFFIXES = {".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def predict(
    run_dir: Path = typer.Argument(..., help="Run directory (or its best.pt checkpoint; with --onnx also a .onnx file)."),
    images: list[Path] = typer.Argument(..., help="Image files (any format Pillow reads)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON list, one {path, predictions, error} per image (detection: also width, height)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Most probable labels shown per image (classification; a tagging model shows every concept)."),
    onnx: bool = typer.Option(False, "--onnx", help="Run with ONNX Runtime (exports model.onnx first if it is missing or stale)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward pass (a detector: images decoded at a time; it runs one by one)."),
    draw: Optional[Path] = typer.Option(
        None, "--draw", help="Detection: draw the boxes with concept and score on the image: OUT.png for one image, "
        "or a folder for several (one IMAGE-NAME.png each; created if missing)."
    ),
) -> None:
    """Predict the labels of images: the most probable classes, (tagging) every concept, on or off, or
    (detection) the boxes at or above the model's score threshold, with concept and score.

    An image that cannot be read is reported on its own row (or with an "error" in JSON) and the
    others are still predicted. Exit code: 0 when every image was predicted, 1 when at least one
    could not be read, 2 for a bad run directory, checkpoint or --draw target.
    """
    from visiontrain.export import ExportError
    from visiontrain.predictor import Predictor

    with user_errors():
        try:
            predictor = Predictor.load(run_dir, backend="onnx" if onnx else "torch")
        except ExportError as exc:  # a foreign .onnx file, or an export that failed its check
            fail(str(exc))
        targets = _drawing_targets(draw, images) if draw is not None else None
        if targets is not None and not predictor.detects:
            fail(f"--draw draws boxes: {run_dir} is a {predictor.task.name} model, not a detection model")
        results = predictor.predict([str(path) for path in images], top_k=top_k, batch_size=batch_size)
        drawn = _draw(predictor, results, targets) if targets is not None else []
    if json_output:
        typer.echo(json.dumps(results, indent=2))
    elif predictor.detects:
        _print_boxes(results, predictor.backend_name, float(predictor.task_state.get("score_threshold", 0.5)))
    else:
        _print_table(results, predictor.backend_name, tagging=predictor.task.name == "tagging")
    if drawn and not json_output:
        console.print(f"Drew the boxes on {len(drawn)} image(s): {escape(', '.join(str(p) for p in drawn))}", highlight=False)
    if any(result["error"] for result in results):
        raise typer.Exit(EXIT_SOME_IMAGES_FAILED)


def _drawing_targets(draw: Path, images: list[Path]) -> list[Path]:
    """Where each image's drawing goes: ``draw`` itself for one image given a .png file, else a
    ``<name>.png`` per image in the folder ``draw`` (``<name>-2.png``... when two images share a name)."""
    if draw.suffix.lower() == DRAWN_SUFFIX and not draw.is_dir():
        if len(images) != 1:
            fail(f"--draw {draw} is one file but {len(images)} images were given: give a folder to draw several")
        if not draw.parent.is_dir():
            fail(f"--draw {draw}: the folder {draw.parent} does not exist")
        return [draw]
    if draw.suffix.lower() in OTHER_PICTURE_SUFFIXES and not draw.is_dir():
        fail(f"--draw writes PNG pictures: give a .png file (one image) or a folder, not {draw}")
    if draw.exists() and not draw.is_dir():
        fail(f"--draw {draw} is a file, not a folder")
    taken: set[str] = set()
    targets = []
    for image in images:
        name, n = image.stem or "image", 1
        while (candidate := f"{name}{'' if n == 1 else f'-{n}'}{DRAWN_SUFFIX}") in taken:
            n += 1
        taken.add(candidate)
        targets.append(draw / candidate)
    return targets


def _draw(predictor: Any, results: list[dict[str, Any]], targets: list[Path]) -> list[Path]:
    from visiontrain.predictor import draw_detections

    drawn = []
    for result, target in zip(results, targets):
        if result["error"]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = draw_detections(predictor.open(result["path"]), result["predictions"], predictor.classes)
        tmp = target.with_name(f".{target.name}.tmp")
        picture.save(tmp, format="PNG")
        tmp.replace(target)
        drawn.append(target)
    return drawn


def _print_boxes(results: list[dict[str, Any]], backend: str, threshold: float) -> None:
    table = Table(title=f"Detections ({backend}; score at least {threshold:g})")
    table.add_column("image", overflow="fold")
    table.add_column("concept")
    table.add_column("score", justify="right")
    for corner in ("x_min", "y_min", "x_max", "y_max"):
        table.add_column(corner, justify="right")
    for result in results:
        path = escape(result["path"])
        if result["error"]:
            table.add_row(path, f"[red]{escape(result['error'])}[/]", *[""] * 5, style="red", end_section=True)
            continue
        if not result["predictions"]:
            table.add_row(path, "[dim]no box[/]", *[""] * 5, end_section=True)
            continue
        for i, found in enumerate(result["predictions"]):
            box = found["box"]
            last = i == len(result["predictions"]) - 1
            table.add_row(path if i == 0 else "", escape(found["label"]), f"{found['score']:.4f}",
                          *(f"{box[k]:.1f}" for k in ("x_min", "y_min", "x_max", "y_max")), end_section=last)
    console.print(table)
    failed = sum(1 for result in results if result["error"])
    if failed:
        console.print(f"[red]{failed} of {len(results)} image(s) could not be read[/]")


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
