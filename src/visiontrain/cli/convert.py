"""`visiontrain convert DATA --task detection --to yolo --out DIR`: one dataset format into another."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

from visiontrain.cli.common import console, errors, fail


def convert(
    data: Path = typer.Argument(..., help="The dataset: a folder or a .zip (ImageFolder, CSV, COCO, YOLO or Pascal VOC)."),
    to: str = typer.Option(..., "--to", help="The format to write: coco, yolo or voc (detection), csv (any task)."),
    out: Path = typer.Option(..., "--out", "-o", help="A new or empty folder to write into, or a .zip file."),
    task: str = typer.Option("detection", "--task", help="What the annotations are: detection, tagging or classification."),
    source_format: Optional[str] = typer.Option(
        None, "--from", help="The dataset's format when its layout is ambiguous (default: recognised from the layout)."
    ),
) -> None:
    """Read an annotated dataset with the importers and write it in another format.

    The same rules as an import into the platform: images that do not decode and annotations that
    cannot be taken are reported and left out; images without objects are kept (an empty YOLO label
    file, a VOC file without <object>, a COCO image without annotations); the train/val/test split
    is kept. Reading the result back gives the same boxes. Exit code 2 for unusable input.
    """
    from visiontrain.data.errors import DataError
    from visiontrain.data.exporters import export_dataset, get_format
    from visiontrain.data.importers import import_archive

    try:
        get_format(to, task)
    except DataError as exc:
        fail(str(exc))
    if not data.exists():
        fail(f"{data}: no such file or folder")
    source, target = data.resolve(), out.resolve()
    if source.is_dir() and (target == source or target.is_relative_to(source)):
        fail(f"{out} is inside the dataset {data}: write the converted dataset somewhere else")
    try:
        dataset = import_archive(data, format=source_format, task=task)
    except DataError as exc:
        fail(str(exc))
    try:
        for message in dataset.warnings:
            errors.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        if dataset.rejected:
            shown = "; ".join(f"{name}: {reason}" for name, reason in dataset.rejected[:5])
            more = f" and {len(dataset.rejected) - 5} more" if len(dataset.rejected) > 5 else ""
            errors.print(f"[yellow]left out:[/] {shown}{more}", highlight=False, soft_wrap=True)
        try:
            result = export_dataset(dataset, out, to)
        except DataError as exc:
            fail(str(exc))
    finally:
        if dataset.extraction_dir is not None:
            shutil.rmtree(dataset.extraction_dir, ignore_errors=True)
    sides = ", ".join(f"{count} {split}" for split, count in sorted(result.split.items()))
    console.print(
        f"Read a {dataset.format} dataset ({len(dataset.images)} images) and wrote [bold]{out}[/] as {result.format}: "
        f"{result.images} images ({sides}), {result.boxes} boxes, {len(result.concepts)} concepts"
        + (f"; {result.left_out} unannotated image(s) left out" if result.left_out else "")
        + (f"; {result.renamed} file name(s) changed to be safe and unique" if result.renamed else ""),
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(convert)
