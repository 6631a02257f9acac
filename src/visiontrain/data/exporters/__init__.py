"""Writing annotated datasets (COCO, YOLO, Pascal VOC, CSV): the importers' way back.

>>> dataset = import_archive(Path("raccoon"), task="detection")      # any importable dataset
>>> result = export_dataset(dataset, Path("raccoon-yolo"), "yolo")    # a new or empty folder
>>> result = export_dataset(dataset, Path("raccoon-coco.zip"), "coco")  # or a zip file
>>> result.files["images/raccoon-1.jpg"]                              # where each image went
'images/raccoon-1.jpg'

The input is the importers' neutral :class:`~visiontrain.data.importers.base.ImportedDataset`, so
that reading an export back with the importer of its format gives the same images (under the
names in ``result.files``), boxes, concepts, splits, and images without objects. See each writer's
module for its layout and :mod:`.base` for file names (safe, unique) and what is left out.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from visiontrain.data.exporters import coco, csv_labels, voc, yolo  # noqa: F401 - they register
from visiontrain.data.exporters.base import (
    ExportError,
    ExportFormat,
    ExportResult,
    FolderSink,
    Sink,
    ZipSink,
    ensure_empty_folder,
    formats_for_task,
    get_format,
    plan,
    registered_formats,
    safe_file_name,
    tidy,
)
from visiontrain.data.importers.base import ImportedDataset

__all__ = [
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "export_dataset",
    "formats_for_task",
    "get_format",
    "registered_formats",
    "safe_file_name",
    "write_dataset",
]


def write_dataset(dataset: ImportedDataset, sink: Sink, format: str) -> ExportResult:  # noqa: A002
    """Write ``dataset`` into ``sink`` (a folder or an open zip) in ``format``; ExportError if it cannot."""
    export_format = get_format(format, dataset.task)
    items, concepts, left_out = plan(dataset)
    if not items:
        raise ExportError("nothing to export: no image of the dataset is annotated")
    files = export_format.write(items, concepts, dataset.task, sink)
    return ExportResult(
        format=export_format.name,
        task=dataset.task,
        concepts=concepts,
        images=len(items),
        boxes=sum(len(item.boxes) for item in items),
        left_out=left_out,
        split=dict(Counter(item.split or "none" for item in items)),
        files=files,
        renamed=sum(1 for item in items if item.file_name != Path(item.image.name.replace("\\", "/")).name),
    )


def export_dataset(dataset: ImportedDataset, out: Path, format: str) -> ExportResult:  # noqa: A002
    """Write ``dataset`` in ``format`` to ``out``: a ``.zip`` file, else a folder (new or empty).

    Nothing is left behind when it fails. ``result.files`` maps each image's name in ``dataset`` to
    its path inside the export.
    """
    out = Path(out)
    get_format(format, dataset.task)  # before anything is created
    if out.suffix.lower() == ".zip":
        if out.is_dir():
            raise ExportError(f"{out} is a folder: give the .zip file to write, or a folder without .zip")
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
        os.close(fd)
        try:
            with zipfile.ZipFile(partial, "w", allowZip64=True) as archive:
                result = write_dataset(dataset, ZipSink(archive), format)
            os.replace(partial, out)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return result
    ensure_empty_folder(out)
    existed = out.exists()
    try:
        return write_dataset(dataset, FolderSink(out), format)
    except BaseException:
        if existed:
            for child in out.iterdir():
                tidy(child)
        else:
            tidy(out)
        raise
