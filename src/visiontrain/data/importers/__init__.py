"""Importing annotated datasets (ImageFolder, CSV, COCO, YOLO, Pascal VOC) from a zip or a folder.

>>> dataset = import_archive(Path("upload.zip"), task="detection")   # format detected
>>> dataset.format, len(dataset.images), dataset.rejected[:3], dataset.warnings

Every format produces the same :class:`ImportedDataset` (see :mod:`.base` for what an annotation
means); errors that stop the whole import raise :class:`ArchiveError` with a message for the user.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from visiontrain.data.archives import (
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_RATIO,
    DEFAULT_MAX_TOTAL_BYTES,
    ArchiveError,
    extract_archive,
)
from visiontrain.data.importers import coco, csv_labels, imagefolder, voc, yolo  # noqa: F401 - they register
from visiontrain.data.importers.base import (
    TASKS,
    Box,
    DatasetFormat,
    ImportedDataset,
    ImportedImage,
    check_task,
    detect_format,
    get_format,
    registered_formats,
)
from visiontrain.data.importers.builder import listing
from visiontrain.data.importers.folder import DatasetFolder, dataset_root

__all__ = [
    "TASKS",
    "ArchiveError",
    "Box",
    "DatasetFormat",
    "ImportedDataset",
    "ImportedImage",
    "formats_for_task",
    "import_archive",
    "import_file",
    "registered_formats",
]


def import_archive(
    source: Path,
    *,
    format: str | None = None,  # noqa: A002 - the platform's parameter name
    task: str = "classification",
    extract_to: Path | None = None,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    display_name: str | None = None,
) -> ImportedDataset:
    """Read the annotated dataset in ``source`` (a zip or tar file, or a folder) for a view of kind ``task``.

    ``format``: one of :func:`registered_formats` names, or None to detect it from the layout
    (``result.detected`` then says so). An archive is extracted safely into ``extract_to``, or into a new
    temporary folder: ``result.extraction_dir`` is that folder, which the caller deletes once the
    images are stored. Raises :class:`ArchiveError` when the archive is unsafe or unreadable, the
    layout is not recognised, or the format cannot feed ``task``.

    ``display_name``: the name the user knows the upload by (the server keeps it under a temporary
    name): messages name it, and files inside it by their path in the archive, never a server path.
    """
    check_task(task)
    source = Path(source)
    if format is not None:
        get_format(format, task)  # fail before extracting anything
    if source.is_dir():
        return _import_folder(source, format, task, extraction_dir=None, clutter=[])
    if not source.is_file():
        raise ArchiveError(f"{display_name or source.name}: no such file or folder")
    own_folder = extract_to is None
    destination = Path(tempfile.mkdtemp(prefix="visiontrain-import-")) if own_folder else Path(extract_to)
    try:
        extraction = extract_archive(
            source, destination, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio
        )
        return _import_folder(destination, format, task, extraction_dir=destination, clutter=extraction.skipped)
    except ArchiveError as exc:
        if own_folder:
            shutil.rmtree(destination, ignore_errors=True)
        raise ArchiveError(_as_the_user_knows(str(exc), source, destination, display_name)) from None
    except BaseException:
        if own_folder:
            shutil.rmtree(destination, ignore_errors=True)
        raise


def _as_the_user_knows(message: str, source: Path, destination: Path, display_name: str | None) -> str:
    """``message`` with the server's temporary paths replaced by what the user uploaded."""
    shown = display_name or source.name
    for folder in {str(destination), str(destination.resolve())}:
        message = message.replace(folder + "/", "").replace(folder, shown)
    for path in {str(source), str(source.resolve())}:
        message = message.replace(path, shown)
    return message.replace(source.name, shown) if display_name else message


def import_file(source: Path, *, task: str = "classification", root: Path | None = None) -> ImportedDataset:
    """Read one annotation file on the local disk (the CLI's ``train labels.csv``): only that file and the
    images it names, with the rules every format shares (the same as for a folder or an archive).

    ``root``: the folder the file's relative paths start from (default: the file's own folder).
    """
    check_task(task)
    source = Path(source).absolute()
    formats = {".csv": "csv"}
    format_name = formats.get(source.suffix.lower())
    if format_name is None:
        raise ArchiveError(
            f"{source.name}: cannot read a {source.suffix or 'extension-less'} file on its own; give a .csv file, "
            "or the dataset's folder (COCO, YOLO, VOC and ImageFolder datasets are read from their folder)"
        )
    if not source.is_file():
        raise ArchiveError(f"{source}: no such file")
    folder = DatasetFolder(Path(root).absolute() if root is not None else source.parent, only=[source])
    return _load(folder, get_format(format_name, task), task, detected=False, extraction_dir=None, clutter=[])


def _import_folder(
    folder_path: Path, format_name: str | None, task: str, *, extraction_dir: Path | None, clutter: list[str]
) -> ImportedDataset:
    folder = DatasetFolder(dataset_root(folder_path))
    dataset_format = get_format(format_name, task) if format_name else detect_format(folder, task)
    return _load(
        folder, dataset_format, task, detected=format_name is None, extraction_dir=extraction_dir, clutter=clutter
    )


def _load(
    folder: DatasetFolder,
    dataset_format: DatasetFormat,
    task: str,
    *,
    detected: bool,
    extraction_dir: Path | None,
    clutter: list[str],
) -> ImportedDataset:
    result = dataset_format.load(folder, task)
    result.detected = detected
    result.extraction_dir = extraction_dir
    if clutter:
        result.skipped["system_files"] = len(clutter)
        result.warnings.append(f"{len(clutter)} system file(s) (__MACOSX, dotfiles) were skipped: {listing(clutter)}")
    if not result.images:
        raise ArchiveError(
            f"no usable image in this {dataset_format.title} dataset"
            + (f"; rejected: {listing([f'{n} ({r})' for n, r in result.rejected])}" if result.rejected else "")
        )
    return result


def formats_for_task(task: str) -> list[DatasetFormat]:
    """The formats that can feed a view of kind ``task``, in detection order (for the upload form)."""
    check_task(task)
    return [f for f in registered_formats() if task in f.tasks]
