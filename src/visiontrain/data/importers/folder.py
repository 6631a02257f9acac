"""The dataset's files, scanned once: lookup of images by reference, split folders, and image probing."""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from PIL import Image

from visiontrain.data.archives import ArchiveError
from visiontrain.data.errors import ImageError
from visiontrain.data.images import IMAGE_EXTENSIONS, open_image

SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    # The platform has train and val only; a held-out test set is held out from training, like val.
    "test": "val",
    "testing": "val",
}
_IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
# Decoding at 1/8 scale still reads every byte of a JPEG, so truncation is caught at a fraction of the cost.
_PROBE_DRAFT_SIZE = 64
_PROBE_WORKERS = min(8, os.cpu_count() or 1)
_EXIF_ORIENTATION = 0x0112
_SIDES_SWAPPED = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class ImageProbe:
    """An image file that decodes, and its size after EXIF orientation."""

    width: int
    height: int


class DatasetFolder:
    """Every visible file under ``root``, by posix name relative to it (hidden files and OS clutter left out)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ArchiveError(f"dataset folder not found: {root}")
        self.root = root
        self.files: dict[str, Path] = {}
        # Parsed annotation files, shared between a format's detection and its loading.
        self.parsed: dict[str, object] = {}
        for current, dirs, names in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for file_name in sorted(names):
                path = Path(current, file_name)
                if not _hidden(file_name) and path.is_file() and not path.is_symlink():
                    self.files[path.relative_to(root).as_posix()] = path
        if not self.files:
            raise ArchiveError("the archive holds no files")

    @cached_property
    def image_names(self) -> list[str]:
        """Names of the files with an image extension (not yet decoded)."""
        return [name for name in self.files if is_image_name(name)]

    @cached_property
    def _images_by_basename(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = defaultdict(list)
        for name in self.image_names:
            index[PurePosixPath(name).name.lower()].append(name)
        return index

    def with_suffix(self, *suffixes: str) -> list[str]:
        return [name for name in self.files if PurePosixPath(name).suffix.lower() in suffixes]

    def find_image(self, reference: str, *base_folders: str) -> str | None:
        """The image a label file refers to: ``reference`` relative to each base folder (then the root),
        else the only image in the dataset with that file name. None when absent or ambiguous."""
        reference = reference.strip().replace("\\", "/")
        if not reference or reference.startswith("/") or ".." in reference.split("/"):
            return None
        for base in (*base_folders, ""):
            candidate = (PurePosixPath(base) / reference).as_posix() if base else PurePosixPath(reference).as_posix()
            if candidate in self.files and is_image_name(candidate):
                return candidate
        matches = self._images_by_basename.get(PurePosixPath(reference).name.lower(), [])
        return matches[0] if len(matches) == 1 else None

    def probe_images(self, names: list[str]) -> tuple[dict[str, ImageProbe], list[tuple[str, str]]]:
        """Decode each image cheaply (thread pool): sizes of the good ones, and (name, reason) for the rest."""
        with ThreadPoolExecutor(max_workers=_PROBE_WORKERS) as pool:
            outcomes = list(pool.map(_probe, (self.files[name] for name in names)))
        probes: dict[str, ImageProbe] = {}
        rejected: list[tuple[str, str]] = []
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, ImageProbe):
                probes[name] = outcome
            else:
                rejected.append((name, outcome))
        return probes, rejected


def split_from_path(name: str) -> str | None:
    """'train' or 'val' when one of the folders holding ``name`` says so (images/train/x.jpg, valid/x.jpg)."""
    for folder in PurePosixPath(name).parts[:-1]:
        split = SPLIT_FOLDERS.get(folder.lower())
        if split:
            return split
    return None


def parent_of(name: str) -> str:
    """The folder holding ``name``, as a posix name; '' for the dataset's root."""
    parent = PurePosixPath(name).parent.as_posix()
    return "" if parent == "." else parent


def join(*parts: str) -> str:
    """Posix join that ignores empty parts: join('', 'images') == 'images'."""
    return "/".join(part for part in parts if part)


def dataset_root(folder: Path) -> Path:
    """Descend through wrapper folders (an archive holding a single folder holding the dataset).

    A lone folder of images only is not a wrapper: it is the one class of an ImageFolder; nor is a
    lone ``train`` folder: it says the split.
    """
    while True:
        children = _visible_children(folder)
        if len(children) != 1 or not children[0].is_dir() or children[0].is_symlink():
            return folder
        if children[0].name.lower() in SPLIT_FOLDERS:
            return folder
        inner = _visible_children(children[0])
        if inner and all(child.is_file() and is_image_name(child.name) for child in inner):
            return folder
        folder = children[0]


def _visible_children(folder: Path) -> list[Path]:
    return [child for child in folder.iterdir() if not _hidden(child.name)]


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def _probe(path: Path) -> ImageProbe | str:
    try:
        with Image.open(path) as header:
            width, height = header.size
            orientation = header.getexif().get(_EXIF_ORIENTATION)
        open_image(path, draft_size=_PROBE_DRAFT_SIZE)
    except ImageError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - the header read failed: let open_image give the user-facing reason
        try:
            open_image(path, draft_size=_PROBE_DRAFT_SIZE)
        except ImageError as exc:
            return str(exc)
        return "cannot read the image header"
    if orientation in _SIDES_SWAPPED:
        width, height = height, width
    return ImageProbe(width=width, height=height)
