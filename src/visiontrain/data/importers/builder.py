"""Collects one format's annotations into an :class:`ImportedDataset`, applying the rules every format shares.

The builder decodes the images first (a thread pool), so that every format can ask for an image's
pixel size and clip its boxes to it; then a format only says "this image has this object", and the
builder turns it into a box (detection) or a tag (tagging), counting what it had to drop.
"""

from __future__ import annotations

import math
from collections import Counter

from visiontrain.data.importers.base import Box, ImportedDataset, ImportedImage, Split
from visiontrain.data.importers.folder import DatasetFolder, is_image_name, split_from_path

MAX_LISTED = 5


class DatasetBuilder:
    def __init__(self, folder: DatasetFolder, format_name: str, task: str, *, split_from_folders: bool = True) -> None:
        self.folder = folder
        self.format_name = format_name
        self.task = task
        self._split_from_folders = split_from_folders
        self.probes, self.rejected = folder.probe_images(folder.image_names)
        self.warnings: list[str] = []
        self.skipped: Counter[str] = Counter()
        self.concepts: set[str] = set()
        self._labels: dict[str, str] = {}
        self._tags: dict[str, set[str]] = {}
        self._boxes: dict[str, list[Box]] = {}
        self._split: dict[str, Split] = {}
        self._degenerate: Counter[str] = Counter()
        self._size_mismatches: list[str] = []
        self._read_files: set[str] = set()

    # --- what formats report

    def has_image(self, name: str) -> bool:
        """True when ``name`` is an image file that decodes (the failures are already in ``rejected``)."""
        return name in self.probes

    def image_size(self, name: str) -> tuple[int, int]:
        probe = self.probes[name]
        return probe.width, probe.height

    def declare_concepts(self, concepts: list[str] | set[str]) -> None:
        """The dataset's own vocabulary (class list, categories): kept even where no image uses a concept."""
        self.concepts.update(concepts)

    def set_label(self, name: str, concept: str) -> None:
        self.concepts.add(concept)
        self._labels[name] = concept

    def add_tag(self, name: str, concept: str) -> None:
        self.concepts.add(concept)
        self._tags.setdefault(name, set()).add(concept)

    def mark_annotated(self, name: str) -> None:
        """``name`` is annotated even if nothing is added to it: without concept, or no object."""
        if self.task == "tagging":
            self._tags.setdefault(name, set())
        elif self.task == "detection":
            self._boxes.setdefault(name, [])

    def add_object(
        self, name: str, concept: str, x_min: float, y_min: float, x_max: float, y_max: float, *, crowd: bool = False
    ) -> None:
        """One object in pixels: a tag when tagging; a box clipped to the image when detecting.

        Crowd regions (COCO ``iscrowd``) say the concept is present but are no single object: they
        tag the image, and are left out (counted) as boxes.
        """
        self.mark_annotated(name)
        if self.task == "tagging":
            self.add_tag(name, concept)
            return
        self.concepts.add(concept)
        if crowd:
            self.skipped["crowd_boxes"] += 1
            return
        width, height = self.image_size(name)
        corners = (x_min, y_min, x_max, y_max)
        if not all(math.isfinite(value) for value in corners):
            self._degenerate[name] += 1
            return
        x_min, x_max = min(max(x_min, 0.0), width), min(max(x_max, 0.0), width)
        y_min, y_max = min(max(y_min, 0.0), height), min(max(y_max, 0.0), height)
        # Inverted corners are an annotation error, not a box to guess at: counted with the empty ones.
        if x_max - x_min <= 0 or y_max - y_min <= 0:
            self._degenerate[name] += 1
            return
        self._boxes[name].append(Box(concept, float(x_min), float(y_min), float(x_max), float(y_max)))

    def check_declared_size(self, name: str, width: int, height: int) -> None:
        """Annotations that give the image size (COCO, VOC, CSV) must agree with the file: boxes are in those pixels."""
        actual = self.image_size(name)
        if width > 0 and height > 0 and (width, height) != actual:
            self._size_mismatches.append(f"{name} ({width}x{height} declared, {actual[0]}x{actual[1]} on file)")

    def mark_read(self, name: str) -> None:
        """``name`` (not an image) was read as annotations, names or metadata; other such files get reported."""
        self._read_files.add(name)

    def set_split(self, name: str, split: Split) -> None:
        self._split[name] = split

    def reject(self, name: str, reason: str) -> None:
        self.rejected.append((name, reason))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    # --- the result

    def build(self) -> ImportedDataset:
        names = sorted(self.probes)
        annotated = {"classification": self._labels, "tagging": self._tags, "detection": self._boxes}[self.task]
        split = dict(self._split)
        if self._split_from_folders:
            for name in names:
                folder_split = split_from_path(name)
                if folder_split and name not in split:
                    split[name] = folder_split  # type: ignore[assignment]
        warnings = list(self.warnings)
        unannotated = [name for name in names if name not in annotated]
        if unannotated:
            warnings.append(
                f"{len(unannotated)} image(s) have no annotation in this {self.format_name} dataset and were "
                f"imported unannotated: {listing(unannotated)}"
            )
        handled = self._read_files | {name for name, _ in self.rejected}
        ignored = [name for name in self.folder.files if not is_image_name(name) and name not in handled]
        if ignored:
            self.skipped["other_files"] += len(ignored)
            warnings.append(
                f"{len(ignored)} file(s) that are neither images nor {self.format_name} annotations were ignored: "
                f"{listing(ignored)}"
            )
        if self._degenerate:
            total = sum(self._degenerate.values())
            self.skipped["degenerate_boxes"] += total
            warnings.append(
                f"{total} box(es) with no area inside their image were skipped, in: "
                f"{listing(sorted(self._degenerate))}"
            )
        if self.skipped.get("crowd_boxes"):
            warnings.append(
                f"{self.skipped['crowd_boxes']} crowd region(s) (iscrowd=1) were skipped as boxes: "
                "they mark a group, not one object"
            )
        if self._size_mismatches:
            warnings.append(
                f"{len(self._size_mismatches)} image(s) differ in size from their annotation, so their boxes may "
                f"be misplaced: {listing(self._size_mismatches)}"
            )
        return ImportedDataset(
            format=self.format_name,
            task=self.task,
            concepts=sorted(self.concepts),
            images=[ImportedImage(name, self.folder.files[name], *self.image_size(name)) for name in names],
            labels={name: self._labels[name] for name in sorted(self._labels)},
            tags={name: sorted(self._tags[name]) for name in sorted(self._tags)},
            boxes={name: self._boxes[name] for name in sorted(self._boxes)},
            split={name: split[name] for name in sorted(split)},
            rejected=sorted(self.rejected),
            warnings=warnings,
            skipped={key: count for key, count in sorted(self.skipped.items()) if count},
            root=self.folder.root,
        )


def listing(names: list[str]) -> str:
    """The first few names, and how many more: warnings stay one line long."""
    shown = ", ".join(names[:MAX_LISTED])
    return shown if len(names) <= MAX_LISTED else f"{shown} and {len(names) - MAX_LISTED} more"
