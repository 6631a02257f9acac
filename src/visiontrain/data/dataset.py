"""The dataset description the engine trains on: paths and labels, nothing else.

Importers (ImageFolder, CSV, later COCO/YOLO/VOC through the platform) produce a
:class:`DatasetSpec`; the engine never reads a database or an HTTP request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One training image and its class label (classification)."""

    path: Path
    label: str


@dataclass(frozen=True)
class Rejected:
    """A file left out of training, and why (reported by path, never silently dropped)."""

    path: Path
    reason: str


@dataclass
class DatasetSpec:
    """Images and labels for one training run.

    ``val`` is None when the validation set is to be split off ``train`` by the settings'
    ``validation_split``; otherwise it is the user's own validation set.
    """

    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None = None
    rejected: list[Rejected] = field(default_factory=list)
    source: str = ""

    def class_counts(self, samples: list[Sample] | None = None) -> dict[str, int]:
        counts = Counter(s.label for s in (self.train if samples is None else samples))
        return {c: counts.get(c, 0) for c in self.classes}
