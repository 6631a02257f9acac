"""The dataset's files, scanned once: lookup of images by reference, split folders, and image probing."""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path, PurePosixPath

from visiontrain.data.archives import ArchiveError
from visiontrain.data.checks import ImageInfo, inspect_image
from visiontrain.data.images import IMAGE_EXTENSIONS

SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    # A held-out test set is never used to choose a model (neither validation nor training): kept apart.
    "test": "test",
    "testing": "test",
}
# Operating-system litter (macOS resource forks, Windows thumbnails) is not the user's data.
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
_PROBE_WORKERS = min(8, os.cpu_count() or 1)


ImageProbe = ImageInfo  # an image file that decodes, and its size after EXIF orientation


class DatasetFolder:
    """Every visible file under ``root``, by posix name relative to it (hidden files and OS clutter left out).

    Symbolic links are followed (a folder linked twice, or a loop, is read once): on the server an
    archive never holds one (extraction refuses them), on a user's disk they are the user's data.

    ``only``: read just these files (a CSV given to the CLI), not the whole folder; the images they
    name are added as they are found (:meth:`find_image` with ``on_disk``).
    """

    def __init__(self, root: Path, *, only: list[Path] | None = None) -> None:
        if not root.is_dir():
            raise ArchiveError(f"dataset folder not found: {root.name or root}")
        self.root = root
        self.files: dict[str, Path] = {}
        self.scanned = only is None
        # Parsed annotation files, shared between a format's detection and its loading.
        self.parsed: dict[str, object] = {}
        if only is not None:
            for path in only:
                self.files[self.name_of(path)] = path
        else:
            self._scan(root)
        if not self.files:
            raise ArchiveError("no files in the dataset (hidden files and __MACOSX are not counted)")

    def _scan(self, root: Path) -> None:
        visited: set[str] = set()
        for current, dirs, names in os.walk(root, followlinks=True):
            real = os.path.realpath(current)
            if real in visited:
                dirs[:] = []
                continue
            visited.add(real)
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for file_name in sorted(names):
                path = Path(current, file_name)
                if not _hidden(file_name) and path.is_file():
                    self.files[path.relative_to(root).as_posix()] = path

    def name_of(self, path: Path) -> str:
        """The posix name of a file: relative to the root when inside it, else its absolute path."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    @property
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

    def find_image(self, reference: str, *base_folders: str, on_disk: bool = False) -> str | None:
        """The image a label file refers to: ``reference`` relative to each base folder (then the root),
        else the only image in the dataset with that file name. None when absent or ambiguous.

        ``on_disk`` (the CLI reading a user's own files): the reference may also be an absolute path
        or lead out of the root with ``..``; a file found so is added to :attr:`files`.
        """
        reference = reference.strip().replace("\\", "/")
        if not reference:
            return None
        if on_disk:
            found = self._find_on_disk(reference, base_folders)
            if found is not None:
                return found
        if reference.startswith("/") or ".." in reference.split("/"):
            return None
        for base in (*base_folders, ""):
            candidate = (PurePosixPath(base) / reference).as_posix() if base else PurePosixPath(reference).as_posix()
            if candidate in self.files and is_image_name(candidate):
                return candidate
        if not self.scanned:
            return None  # only the named files were read: no index of file names to search
        matches = self._images_by_basename.get(PurePosixPath(reference).name.lower(), [])
        return matches[0] if len(matches) == 1 else None

    def _find_on_disk(self, reference: str, base_folders: tuple[str, ...]) -> str | None:
        given = Path(reference).expanduser()
        candidates = [given] if given.is_absolute() else [self.root / base / given for base in (*base_folders, "")]
        for path in candidates:
            if is_image_name(path.name) and path.is_file():
                path = Path(os.path.normpath(path.absolute()))
                name = self.name_of(path)
                self.files.setdefault(name, path)
                return name
        return None

    def probe_images(self, names: list[str]) -> tuple[dict[str, ImageProbe], list[tuple[str, str]]]:
        """Decode each image cheaply (thread pool): sizes of the good ones, and (name, reason) for the rest."""
        with ThreadPoolExecutor(max_workers=_PROBE_WORKERS) as pool:
            outcomes = list(pool.map(inspect_image, (self.files[name] for name in names)))
        probes: dict[str, ImageProbe] = {}
        rejected: list[tuple[str, str]] = []
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, ImageProbe):
                probes[name] = outcome
            else:
                rejected.append((name, outcome))
        return probes, rejected


def split_from_path(name: str) -> str | None:
    """'train', 'val' or 'test' when one of the folders holding ``name`` says so (images/train/x.jpg, valid/x.jpg)."""
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
    return name.startswith(".") or name in IGNORED_NAMES
