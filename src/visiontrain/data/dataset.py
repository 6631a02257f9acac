"""The dataset description the engine trains on: paths and targets, nothing else.

Importers (ImageFolder, CSV, COCO, YOLO, VOC: ``data.sources`` for the CLI, the platform's snapshot
for the worker) produce a :class:`DatasetSpec`; the engine never reads a database or an HTTP request.
The spec names its task (``tasks`` registry): what a sample's ``labels`` mean is the task's business.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Box:
    """One object: its concept and its corners in pixels of the (EXIF-oriented) image, clipped to it."""

    concept: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def corners(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)


@dataclass(frozen=True)
class Sample:
    """One image and its concepts.

    ``labels``: classification, exactly one class; tagging, zero or more concepts (none: the image
    is annotated "without concept", an all-negative example). A plain string is taken as one label,
    so ``Sample(path, "cat")`` is a classification sample. Detection: ``boxes`` are the objects and
    ``labels`` the concepts among them, each once, sorted (what the split stratifies on); no box
    means the image is annotated "without concept" (a negative, used in validation).
    """

    path: Path
    labels: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            object.__setattr__(self, "labels", (self.labels,))
        elif not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", tuple(self.labels))
        if not isinstance(self.boxes, tuple):
            object.__setattr__(self, "boxes", tuple(self.boxes))
        if self.boxes and not self.labels:
            object.__setattr__(self, "labels", tuple(sorted({box.concept for box in self.boxes})))

    @classmethod
    def with_boxes(cls, path: Path, boxes: "list[Box] | tuple[Box, ...]") -> "Sample":
        return cls(path, tuple(sorted({box.concept for box in boxes})), tuple(boxes))

    @property
    def label(self) -> str:
        """The one class of a classification sample."""
        if len(self.labels) != 1:
            raise ValueError(f"{self.path} has {len(self.labels)} labels; a classification sample has exactly one")
        return self.labels[0]


@dataclass(frozen=True)
class Rejected:
    """A file left out of training, and why (reported by path, never silently dropped)."""

    path: Path
    reason: str


@dataclass
class DatasetSpec:
    """Images and targets for one training run.

    ``val`` is None when the validation set is to be split off ``train`` by the settings'
    ``validation_split``; otherwise it is the user's own validation set. ``test`` is a held-out set
    that is never used to choose a model: it is evaluated once after training (test metrics).
    """

    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None = None
    rejected: list[Rejected] = field(default_factory=list)
    source: str = ""
    task: str = "classification"
    test: list[Sample] | None = None
    # What the reader noticed and the user should hear (unannotated images, dropped boxes, the
    # platform's split warnings); the training summary repeats them.
    warnings: list[str] = field(default_factory=list)

    def class_counts(self, samples: list[Sample] | None = None) -> dict[str, int]:
        """Images per class (tagging and detection: images carrying each concept), in ``classes`` order."""
        counts = Counter(label for s in (self.train if samples is None else samples) for label in s.labels)
        return {c: counts.get(c, 0) for c in self.classes}
