"""What every annotation writer shares: the neutral input, safe unique file names, and where the files go.

The input is the importers' own :class:`~visiontrain.data.importers.base.ImportedDataset` (images,
their boxes/tags/labels, concepts, splits), so that import and export are symmetric: a dataset
written by a writer and read back by the importer of the same format gives the same annotations.

Every image annotated for the dataset's task is written (with no object or without concept too);
images without an annotation are left out and counted. Each written image gets a file name of its
own: the last part of its name, made safe (no folder, no ``..``, no control or reserved characters,
no leading dot) and unique across the whole export by stem, case-insensitively (YOLO label files,
VOC XML files and VOC's image lists are keyed by stem, and case-insensitive disks would merge
``A.jpg`` with ``a.jpg``). A clash gets ``_2``, ``_3``, ... in the order of the dataset's images.
Every path is checked again by the sink that writes it: nothing is written outside the output.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from visiontrain.data.errors import DataError
from visiontrain.data.images import IMAGE_EXTENSIONS
from visiontrain.data.importers.base import Box, ImportedDataset, ImportedImage

SPLITS = ("train", "val", "test")
# A file name's length in UTF-8 bytes, before a clash suffix and a label file's extension are added:
# well within the 255 bytes every file system allows.
MAX_NAME_BYTES = 150
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*\s]+')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
# Bytes that say an image's format, for a stored name without an image extension.
_MAGIC_EXTENSIONS = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


class ExportError(DataError):
    """A dataset that cannot be written in the format asked for; the message says why."""


@dataclass
class ExportItem:
    """One image to write: its source, its file name in the export, its split and its annotation."""

    image: ImportedImage
    file_name: str  # safe and unique in the export, e.g. "raccoon-1.jpg"
    split: str | None  # "train", "val", "test", or None: not split
    boxes: list[Box] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    label: str | None = None

    @property
    def stem(self) -> str:
        return PurePosixPath(self.file_name).stem


@dataclass
class ExportResult:
    """What was written: counts, and where each source image went (its name -> its path in the export)."""

    format: str
    task: str
    concepts: list[str]
    images: int = 0
    boxes: int = 0
    left_out: int = 0  # images of the dataset without an annotation for its task: not written
    split: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    renamed: int = 0  # images whose file name had to change (unsafe characters, a clash)

    def summary(self) -> dict[str, object]:
        return {
            "format": self.format,
            "task": self.task,
            "images": self.images,
            "boxes": self.boxes,
            "concepts": len(self.concepts),
            "left_out": self.left_out,
            "renamed": self.renamed,
            "split": dict(self.split),
        }


class Sink(Protocol):
    """Where an export's files go: a folder or a zip file. Paths are relative posix paths, checked."""

    def write_file(self, path: str, source: Path) -> None: ...

    def write_text(self, path: str, text: str) -> None: ...


def checked_path(path: str) -> str:
    """``path`` if it is a plain relative posix path inside the output; ExportError otherwise (a bug guard)."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(part in ("", ".", "..") for part in parts)
        or any(ord(ch) < 32 or ch == "\x7f" for ch in path)
        or re.match(r"^[A-Za-z]:", path)
    ):
        raise ExportError(f"refusing to write {path!r}: not a plain relative path inside the export")
    return path


class FolderSink:
    """Files written under ``root`` (created); a path that would resolve outside it is refused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()

    def _target(self, path: str) -> Path:
        target = self.root.joinpath(*checked_path(path).split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        real = target.parent.resolve() / target.name
        if not real.is_relative_to(self._real_root) or target.is_symlink():
            raise ExportError(f"refusing to write {path!r}: it would land outside {self.root}")
        return target

    def write_file(self, path: str, source: Path) -> None:
        shutil.copyfile(source, self._target(path))

    def write_text(self, path: str, text: str) -> None:
        self._target(path).write_text(text, encoding="utf-8", newline="\n")


class ZipSink:
    """Files written into an open zip file: images stored as they are (already compressed), text deflated."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self._written: set[str] = set()

    def _name(self, path: str) -> str:
        name = checked_path(path)
        if name.casefold() in self._written:
            raise ExportError(f"refusing to write {path!r} twice")
        self._written.add(name.casefold())
        return name

    def write_file(self, path: str, source: Path) -> None:
        self.archive.write(source, self._name(path), compress_type=zipfile.ZIP_STORED)

    def write_text(self, path: str, text: str) -> None:
        self.archive.writestr(self._name(path), text.encode("utf-8"), compress_type=zipfile.ZIP_DEFLATED)


Writer = Callable[[list[ExportItem], list[str], str, Sink], dict[str, str]]


@dataclass(frozen=True)
class ExportFormat:
    """One writable layout: the tasks it can hold and its writer.

    ``write(items, concepts, task, sink)`` writes every item and returns, for each item's source
    name, the path its image was written to.
    """

    name: str
    title: str
    tasks: tuple[str, ...]
    write: Writer
    layout: str  # one line for help texts: what the export holds
    order: int = 100  # where it is listed (lower first)


_REGISTRY: dict[str, ExportFormat] = {}


def register(export_format: ExportFormat) -> ExportFormat:
    if export_format.name in _REGISTRY:
        raise ValueError(f"export format {export_format.name!r} is registered twice")
    _REGISTRY[export_format.name] = export_format
    return export_format


def registered_formats() -> list[ExportFormat]:
    return sorted(_REGISTRY.values(), key=lambda f: (f.order, f.name))


def formats_for_task(task: str) -> list[ExportFormat]:
    return [f for f in registered_formats() if task in f.tasks]


def get_format(name: str, task: str) -> ExportFormat:
    """The format called ``name`` for a dataset of ``task``; ExportError naming the possible ones otherwise."""
    usable = ", ".join(f.name for f in formats_for_task(task)) or "none"
    export_format = _REGISTRY.get(str(name).strip().lower())
    if export_format is None:
        raise ExportError(f"unknown export format {str(name)[:40]!r}; a {task} dataset can be written as: {usable}")
    if task not in export_format.tasks:
        raise ExportError(
            f"a {task} dataset cannot be written as {export_format.title} (it holds "
            f"{' or '.join(export_format.tasks)} annotations); it can be written as: {usable}"
        )
    return export_format


# --- file names


def safe_file_name(name: str, source: Path | None = None) -> str:
    """The last part of ``name``, safe on every file system and readable back as an image.

    Folders and ``..`` are dropped, control and reserved characters (and spaces) become ``_``, a
    leading dot (a hidden file, skipped by importers) is removed; a name without an image extension
    gets the one of ``source`` (its own suffix, else its first bytes).
    """
    text = unicodedata.normalize("NFC", str(name)).replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".", "..")]
    last = _UNSAFE.sub("_", parts[-1] if parts else "").strip(". ")
    stem, suffix = _split_suffix(last)
    if suffix.lower() not in IMAGE_EXTENSIONS:
        stem, suffix = last, _extension_of(source)
    stem = stem.strip(". ") or "image"
    if stem.lower() in _WINDOWS_RESERVED or stem.lower().split(".")[0] in _WINDOWS_RESERVED:
        stem = "_" + stem
    while len((stem + suffix).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + suffix


def _split_suffix(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.rpartition(".")
    return (stem, "." + suffix) if dot and stem else (name, "")


def _extension_of(source: Path | None) -> str:
    if source is None:
        return ".jpg"
    if source.suffix.lower() in IMAGE_EXTENSIONS:
        return source.suffix.lower()
    try:
        with open(source, "rb") as handle:
            head = handle.read(16)
    except OSError:
        head = b""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _MAGIC_EXTENSIONS if head.startswith(magic)), ".jpg")


def unique_file_names(images: list[ImportedImage]) -> dict[str, str]:
    """A safe file name per image name, unique by stem (case-insensitive) over the whole list.

    The first image (in list order) with a name keeps it; later ones get ``_2``, ``_3``, ... skipping
    any stem another image wants as is. Deterministic for a given list.
    """
    wanted = {image.name: safe_file_name(image.name, image.path) for image in images}
    reserved = {_key(name) for name in wanted.values()}
    taken: set[str] = set()
    result: dict[str, str] = {}
    for image in images:
        file_name = wanted[image.name]
        if _key(file_name) in taken:
            stem, suffix = _split_suffix(file_name)
            number = 2
            while _key(f"{stem}_{number}{suffix}") in taken or _key(f"{stem}_{number}{suffix}") in reserved:
                number += 1
            file_name = f"{stem}_{number}{suffix}"
        taken.add(_key(file_name))
        result[image.name] = file_name
    return result


def _key(file_name: str) -> str:
    return _split_suffix(file_name)[0].casefold()


# --- the plan every writer follows


def plan(dataset: ImportedDataset) -> tuple[list[ExportItem], list[str], int]:
    """(items to write, concepts in order, images left out for want of an annotation)."""
    annotated = dataset.annotated
    kept = [image for image in dataset.images if image.name in annotated]
    names = unique_file_names(kept)
    concepts = list(dict.fromkeys(dataset.concepts))
    items = []
    for image in kept:
        split = dataset.split.get(image.name)
        if split is not None and split not in SPLITS:
            raise ExportError(f"{image.name}: unknown split {split!r} (expected train, val or test)")
        item = ExportItem(image=image, file_name=names[image.name], split=split)
        if dataset.task == "detection":
            item.boxes = list(dataset.boxes[image.name])
            used = [box.concept for box in item.boxes]
        elif dataset.task == "tagging":
            item.tags = list(dataset.tags[image.name])
            used = item.tags
        else:
            item.label = dataset.labels[image.name]
            used = [item.label]
        for concept in used:
            if concept not in concepts:
                concepts.append(concept)
        items.append(item)
    return items, concepts, len(dataset.images) - len(kept)


def folder_of(item: ExportItem, base: str) -> str:
    """``base/<split>`` for a split image, ``base`` for one without a split."""
    return f"{base}/{item.split}" if item.split else base


def number_text(value: float) -> str:
    """A coordinate as text, exactly: integers without a decimal point (tools that parse int() read them),
    other values in the shortest form that reads back as the same float."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def ensure_empty_folder(path: Path) -> None:
    """An export goes into a new or empty folder: files of another dataset there would be read back with it."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ExportError(f"{path} is not an empty folder: give a new folder to write the dataset into")


def tidy(path: Path) -> None:
    """Remove a half-written export (a folder or a file)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        os.unlink(path)
