"""The neutral result of importing an annotated dataset, and the registry of formats that produce it.

Every importer (ImageFolder, CSV, COCO, YOLO, Pascal VOC) turns a folder into one
:class:`ImportedDataset` for one task: the platform stores it the same way whatever the format.

Annotation semantics, the same for every format:
- every image that decodes is in ``images``; files that do not are in ``rejected`` with a reason;
- an image present in the task's dict (``labels``, ``tags`` or ``boxes``) is annotated: ``tags[n] == []``
  means "annotated, without concept" and ``boxes[n] == []`` means "annotated, no object";
- an image absent from it is imported unannotated (and a warning says how many);
- ``rejected`` names each file or annotation left out, with the reason. An image whose annotation is
  refused (a bad label line, conflicting labels) is still imported, unannotated, so that nothing
  half-annotated is ever taken for complete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from visiontrain.data.archives import ArchiveError
from visiontrain.data.dataset import Box  # noqa: F401 - the importers' and exporters' box

if TYPE_CHECKING:
    from visiontrain.data.importers.folder import DatasetFolder

TASKS = ("classification", "tagging", "detection")
# "test": a held-out set, never used to choose a model (neither trained on nor validated on).
Split = Literal["train", "val", "test"]



@dataclass(frozen=True)
class ImportedImage:
    """One image that decodes, and its size after EXIF orientation.

    ``name``: its posix path inside the archive, relative to the dataset's root folder (a wrapper
    folder holding the whole dataset, as in ``coco128/images/...``, is left out).
    """

    name: str
    path: Path
    width: int
    height: int


@dataclass
class ImportedDataset:
    """Images and their annotations for one task, plus everything left out and why."""

    format: str
    task: str
    concepts: list[str]
    images: list[ImportedImage]
    labels: dict[str, str] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    boxes: dict[str, list[Box]] = field(default_factory=dict)
    split: dict[str, Split] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Things dropped on purpose, by kind: "crowd_boxes", "degenerate_boxes", "skipped_files", ...
    skipped: dict[str, int] = field(default_factory=dict)
    # The folder the dataset was read from (the extraction folder for a zip: the caller owns it).
    root: Path | None = None
    # The folder a zip was extracted into, for the caller to delete once the images are stored; None for a folder.
    extraction_dir: Path | None = None
    # True when ``format`` was detected from the layout rather than given by the caller.
    detected: bool = False

    @property
    def annotated(self) -> set[str]:
        """Names of the images that carry an annotation for this task."""
        return set({"classification": self.labels, "tagging": self.tags, "detection": self.boxes}[self.task])

    def concept_counts(self) -> dict[str, int]:
        """Images per concept (classification, tagging) or boxes per concept (detection), every concept listed."""
        counts: Counter[str] = Counter()
        if self.task == "classification":
            counts.update(self.labels.values())
        elif self.task == "tagging":
            counts.update(tag for tags in self.tags.values() for tag in tags)
        else:
            counts.update(box.concept for boxes in self.boxes.values() for box in boxes)
        return {concept: counts.get(concept, 0) for concept in self.concepts}

    def summary(self) -> dict[str, object]:
        """Counts for a report or an API response."""
        return {
            "format": self.format,
            "detected": self.detected,
            "task": self.task,
            "images": len(self.images),
            "annotated": len(self.annotated),
            "concepts": len(self.concepts),
            "boxes": sum(len(b) for b in self.boxes.values()),
            "split": dict(Counter(self.split.values())),
            "rejected": len(self.rejected),
            "warnings": len(self.warnings),
            "skipped": dict(self.skipped),
        }


@dataclass(frozen=True)
class DatasetFormat:
    """One importable layout: the tasks it can feed, how to recognise it, and how to read it.

    ``detect_priority``: lower is tried first. Specific layouts (a COCO JSON, VOC XML) come before
    generic ones (a CSV, folders of images), since an archive may hold several.
    """

    name: str
    title: str
    tasks: tuple[str, ...]
    detect_priority: int
    matches: Callable[[DatasetFolder], bool]
    load: Callable[[DatasetFolder, str], ImportedDataset]


_REGISTRY: dict[str, DatasetFormat] = {}


def register(dataset_format: DatasetFormat) -> DatasetFormat:
    if dataset_format.name in _REGISTRY:
        raise ValueError(f"dataset format {dataset_format.name!r} is registered twice")
    _REGISTRY[dataset_format.name] = dataset_format
    return dataset_format


def registered_formats() -> list[DatasetFormat]:
    """Every format, in detection order."""
    return sorted(_REGISTRY.values(), key=lambda f: f.detect_priority)


def get_format(name: str, task: str) -> DatasetFormat:
    """The format called ``name``; ArchiveError if unknown or if it cannot feed ``task``."""
    check_task(task)
    try:
        dataset_format = _REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(f.name for f in registered_formats())
        raise ArchiveError(f"unknown dataset format {name!r}; known formats: {known}") from None
    if task not in dataset_format.tasks:
        raise ArchiveError(
            f"a {dataset_format.title} dataset cannot feed a {task} view "
            f"(it feeds {' or '.join(dataset_format.tasks)})"
        )
    return dataset_format


def detect_format(folder: DatasetFolder, task: str) -> DatasetFormat:
    """The first format, in detection order, whose layout matches; ArchiveError if it cannot feed ``task``.

    No falling back to a weaker match: folders named ``images/`` would pass for an ImageFolder class,
    and a silently wrong reading is worse than asking the user to name the format.
    """
    check_task(task)
    for dataset_format in registered_formats():
        if dataset_format.matches(folder):
            if task not in dataset_format.tasks:
                raise ArchiveError(
                    f"this archive looks like a {dataset_format.title} dataset, which cannot feed a {task} view "
                    f"(it feeds {' or '.join(dataset_format.tasks)}); choose the format if it is another one"
                )
            return dataset_format
    raise ArchiveError(
        "cannot recognise the dataset layout: expected folders of images per class (ImageFolder), a CSV of "
        "labels, a COCO JSON, YOLO labels with data.yaml or classes.txt, or Pascal VOC XML files"
    )


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ArchiveError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
