"""ImageFolder: one folder per class, ``<class>/<images>`` or ``train/<class>/...`` with ``val/<class>/...``
(and ``test/<class>/...``, a held-out set).

The class is the first folder below the root (or below the split folder); deeper folders belong to
it. For tagging each image gets its folder's concept as its one tag. Images outside any class folder
are imported unannotated; other files inside class folders are rejected as not images. A split
folder (``train/``) beside class folders is refused: a class called "train" is far less likely than
a misplaced folder, and guessing either way would mislabel images.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from visiontrain.data.archives import ArchiveError
from visiontrain.data.importers.base import DatasetFormat, ImportedDataset, register
from visiontrain.data.importers.builder import DatasetBuilder
from visiontrain.data.importers.folder import SPLIT_FOLDERS, DatasetFolder, is_image_name


def matches(folder: DatasetFolder) -> bool:
    return any(_class_of(folder, name) for name in folder.image_names)


def load(folder: DatasetFolder, task: str) -> ImportedDataset:
    if not matches(folder):
        raise ArchiveError(
            "no class folders found: expected <class>/<images>, or train/<class>/<images> with val/<class>/<images>"
        )
    _check_split_layout(folder)
    builder = DatasetBuilder(folder, "imagefolder", task, split_from_folders=False)
    for name in folder.files:
        located = _class_of(folder, name)
        if located is None:
            continue
        concept, split = located
        if not is_image_name(name):
            suffix = PurePosixPath(name).suffix or "no extension"
            builder.reject(name, f"not an image ({suffix}) in class folder {concept!r}")
            continue
        if not builder.has_image(name):
            continue  # rejected with its own reason
        if task == "classification":
            builder.set_label(name, concept)
        else:
            builder.mark_annotated(name)
            builder.add_tag(name, concept)
        if split:
            builder.set_split(name, split)  # type: ignore[arg-type]
    dataset = builder.build()
    if len(dataset.concepts) == 1:
        dataset.warnings.append(
            f"only one class folder was found ({dataset.concepts[0]!r}): if it just holds the images, this archive "
            "has no labels; a classification view needs a folder per class"
        )
    return dataset


def _class_of(folder: DatasetFolder, name: str) -> tuple[str, str | None] | None:
    """(class, split) of a file, or None when it sits outside any class folder."""
    folders = PurePosixPath(name).parts[:-1]
    split = None
    if _has_split_folders(folder) and folders and folders[0].lower() in SPLIT_FOLDERS:
        split = SPLIT_FOLDERS[folders[0].lower()]
        folders = folders[1:]
    if not folders or not folders[0].strip():
        return None
    return folders[0].strip(), split


def _top_folders(folder: DatasetFolder) -> tuple[set[str], set[str]]:
    """(top-level folders holding images, those among them holding images inside sub-folders)."""
    parts = [PurePosixPath(name).parts for name in folder.image_names]
    return {p[0] for p in parts if len(p) > 1}, {p[0] for p in parts if len(p) > 2}


def _has_split_folders(folder: DatasetFolder) -> bool:
    """True when a top-level folder is a split (train, val, test, ...) with class folders in it."""
    if "imagefolder_split" not in folder.parsed:
        _, nested = _top_folders(folder)
        folder.parsed["imagefolder_split"] = any(t.lower() in SPLIT_FOLDERS for t in nested)
    return bool(folder.parsed["imagefolder_split"])


def _check_split_layout(folder: DatasetFolder) -> None:
    if not _has_split_folders(folder):
        return
    top, _ = _top_folders(folder)
    splits = sorted(t for t in top if t.lower() in SPLIT_FOLDERS)
    others = sorted(t for t in top if t.lower() not in SPLIT_FOLDERS)
    if others:
        raise ArchiveError(
            f"the dataset mixes split folders ({', '.join(s + '/' for s in splits)}) with other folders of images "
            f"({', '.join(o + '/' for o in others[:5])}{' ...' if len(others) > 5 else ''}): expected <class>/<images>, "
            "or train/<class>/<images> with val/<class>/<images> (and test/<class>/<images>); "
            "move those folders into a split folder"
        )


FORMAT = register(
    DatasetFormat(
        name="imagefolder",
        title="ImageFolder",
        tasks=("classification", "tagging"),
        detect_priority=50,
        matches=matches,
        load=load,
    )
)
