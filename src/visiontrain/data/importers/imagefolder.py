"""ImageFolder: one folder per class, ``<class>/<images>`` or ``train/<class>/...`` with ``val/<class>/...``.

The class is the first folder below the root (or below the split folder); deeper folders belong to
it. For tagging each image gets its folder's concept as its one tag. Images outside any class folder
are imported unannotated; other files inside class folders are rejected as not images.
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


def _has_split_folders(folder: DatasetFolder) -> bool:
    """True when every top-level folder holding images is a split (train, val, ...) with class folders in it."""
    if "imagefolder_split" not in folder.parsed:
        top = {PurePosixPath(name).parts[0] for name in folder.image_names if len(PurePosixPath(name).parts) > 1}
        nested = {
            PurePosixPath(name).parts[0] for name in folder.image_names if len(PurePosixPath(name).parts) > 2
        }
        folder.parsed["imagefolder_split"] = bool(top) and all(t.lower() in SPLIT_FOLDERS and t in nested for t in top)
    return bool(folder.parsed["imagefolder_split"])


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
