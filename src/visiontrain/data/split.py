"""Holding out a validation set: stratified by class, seeded, the same on every run and platform."""

from __future__ import annotations

import random
from collections import defaultdict

from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError


def stratified_split(
    samples: list[Sample], fraction: float, seed: int, *, classes: list[str] | None = None
) -> tuple[list[Sample], list[Sample]]:
    """Split ``samples`` into (train, val) with about ``fraction`` of each class in val.

    Every class keeps at least one image on each side. Each class is shuffled with its own
    generator seeded by (seed, class name), so adding images to one class does not move the
    images of another between train and val. ``classes``: the classes the model will have;
    one with no samples at all is an error too.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)

    empty = sorted(set(classes or ()) - set(by_class))
    if empty:
        raise DataError(
            f"no usable images for class {_names(empty)}: add images or remove the class"
        )
    too_small = sorted(label for label, items in by_class.items() if len(items) < 2)
    if too_small:
        raise DataError(
            f"class {_names(too_small)} has only 1 image: at least 2 are needed so one can be used for "
            "validation; add images or give a validation folder"
        )

    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        # Sorted first: the split must not depend on the order the files were listed in.
        items = sorted(by_class[label], key=lambda s: s.path.as_posix())
        random.Random(f"{seed}:{label}").shuffle(items)
        n_val = min(max(round(len(items) * fraction), 1), len(items) - 1)
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return _sorted(train), _sorted(val)


def _sorted(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.path.as_posix(), s.label))


def _names(labels: list[str]) -> str:
    return ", ".join(f"'{label}'" for label in labels)
