"""Holding out a validation set: stratified, seeded, the same on every run and platform.

- :func:`stratified_split`: classification, stratified by class.
- :func:`multilabel_split`: tagging, iterative stratification over concepts (Sechidis, Tsoumakas and
  Vlahavas, 2011), so every concept with at least 2 images has one on each side.
- :func:`extend_split`: an existing assignment (the platform's view split) extended to new samples
  without moving any sample already assigned; with nothing assigned it is exactly the split above.

Every decision is seeded by the seed and the sample's path or class name, never by the order in
which the samples were listed. :func:`content_keyed` names each sample by its file's sha256 first (as
the platform does), so the CLI's split of a folder does not depend on where the folder lies, and the
same images split the same way through the CLI and the platform.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath

from visiontrain.data.dataset import Sample
from visiontrain.data.digests import file_sha256
from visiontrain.data.errors import DataError

TRAIN = "train"
VAL = "val"


def stratified_split(
    samples: list[Sample], fraction: float, seed: int, *, classes: list[str] | None = None
) -> tuple[list[Sample], list[Sample]]:
    """Split ``samples`` into (train, val) with about ``fraction`` of each class in val.

    Every class keeps at least one image on each side. Each class is shuffled with its own
    generator seeded by (seed, class name), so adding images to one class does not move the
    images of another between train and val. ``classes``: the classes the model will have;
    one with no samples at all is an error too.
    """
    _check_fraction(fraction)
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
    train, val, _ = _extend_classes(samples, {}, fraction, seed)
    return train, val


def multilabel_split(
    samples: list[Sample], fraction: float, seed: int, *, classes: list[str]
) -> tuple[list[Sample], list[Sample], list[str]]:
    """Split multi-label ``samples`` into (train, val, warnings), about ``fraction`` of each concept in val.

    Iterative stratification: the rarest concept is placed first, each of its images on the side
    that still lacks most of that concept. Images without any concept ("without concept",
    all-negative examples) are spread so that each side holds about its share of images. Every
    concept with at least 2 images ends with one on each side; a warning names each concept that
    does not (it has fewer than 2 images).
    """
    return extend_split(samples, {}, fraction, seed, classes=classes, multilabel=True)


def extend_split(
    samples: list[Sample],
    assigned: Mapping[str, str],
    fraction: float,
    seed: int,
    *,
    classes: list[str] | None = None,
    multilabel: bool = False,
) -> tuple[list[Sample], list[Sample], list[str]]:
    """(train, val, warnings) for ``samples``, keeping every side already in ``assigned``.

    ``assigned`` maps a sample's path (``Path.as_posix()``) to ``"train"`` or ``"val"``; those samples
    stay where they are, the others are placed so that each class (or concept) gets as close to
    ``fraction`` in val as the kept ones allow, with at least one image on each side where it has two.
    With nothing assigned this is :func:`stratified_split` (classification) or
    :func:`multilabel_split` (``multilabel``). Classification never raises for small classes here:
    a class left on one side is named in the warnings.
    """
    _check_fraction(fraction)
    for key, side in assigned.items():
        if side not in (TRAIN, VAL):
            raise ValueError(f"side of {key} must be 'train' or 'val', got {side!r}")
    if multilabel:
        return _extend_multilabel(samples, assigned, fraction, seed, classes)
    train, val, warnings = _extend_classes(samples, assigned, fraction, seed)
    return train, val, warnings


# --- classification


def _extend_classes(
    samples: list[Sample], assigned: Mapping[str, str], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample], list[str]]:
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        # Sorted first: the split must not depend on the order the files were listed in.
        items = sorted(by_class[label], key=_key)
        kept = [s for s in items if _key(s) in assigned]
        new = [s for s in items if _key(s) not in assigned]
        random.Random(f"{seed}:{label}").shuffle(new)
        kept_val = sum(assigned[_key(s)] == VAL for s in kept)
        need_val = max(0, _target(len(items), fraction) - kept_val)
        n_val = min(need_val, len(new))
        for sample in kept:
            (val if assigned[_key(sample)] == VAL else train).append(sample)
        val.extend(new[:n_val])
        train.extend(new[n_val:])
    return _sorted(train), _sorted(val), _one_sided(train, val, by_class)


def _one_sided(train: list[Sample], val: list[Sample], by_class: Mapping[str, list[Sample]]) -> list[str]:
    """Classes that ended on one side only (a single image, or kept sides that force it)."""
    train_keys, val_keys = {_key(s) for s in train}, {_key(s) for s in val}
    out = []
    for label in sorted(by_class):
        items = by_class[label]
        n_train = sum(_key(s) in train_keys for s in items)
        n_val = sum(_key(s) in val_keys for s in items)
        if n_train == 0 or n_val == 0:
            reason = "only 1 image" if len(items) < 2 else "the images already placed allow no other way"
            out.append(f"class {label!r} is not on both sides ({n_train} training, {n_val} validation; {reason})")
    return out


# --- multi-label


def _extend_multilabel(
    samples: list[Sample], assigned: Mapping[str, str], fraction: float, seed: int, classes: list[str] | None
) -> tuple[list[Sample], list[Sample], list[str]]:
    concepts = sorted(set(classes) if classes is not None else {c for s in samples for c in s.labels})
    known = set(concepts)
    # Each sample's key, its known concepts and the images carrying each concept, computed once: asked for
    # per concept and per decision they were most of a 100,000-image split's time (8 million key lookups).
    items = sorted(samples, key=_key)
    keys = [_key(s) for s in items]
    labels = [[c for c in dict.fromkeys(s.labels) if c in known] for s in items]
    carriers: dict[str, list[int]] = {c: [] for c in concepts}
    for index, names in enumerate(labels):
        for c in names:
            carriers[c].append(index)
    side: list[str | None] = [assigned.get(key) for key in keys]
    # A seeded order per image (not a shuffle of the list): adding an image does not reorder the others.
    new = sorted((i for i in range(len(items)) if side[i] is None), key=lambda i: _draw(seed, keys[i]))

    totals = {c: len(carriers[c]) for c in concepts}
    # How many more of each concept each side still wants, after the kept samples.
    want = {VAL: {c: _target(totals[c], fraction) for c in concepts}}
    want[TRAIN] = {c: totals[c] - want[VAL][c] for c in concepts}
    want_images = {VAL: _target(len(items), fraction) if len(items) >= 2 else 0}
    want_images[TRAIN] = len(items) - want_images[VAL]
    for index, chosen in enumerate(side):
        if chosen is not None:
            want_images[chosen] -= 1
            for c in labels[index]:
                want[chosen][c] -= 1

    def place(index: int, chosen: str) -> None:
        side[index] = chosen
        want_images[chosen] -= 1
        for c in labels[index]:
            want[chosen][c] -= 1

    target = {side_: dict(counts) for side_, counts in want.items()}
    target_images = dict(want_images)

    def choose(index: int, concept: str) -> str:
        # The concept being placed decides when only one side still wants it; otherwise each side's
        # need for all of the image's concepts, relative to what it wanted at the start, then its need
        # for images, then a seeded draw.
        if any(totals[c] < 2 for c in labels[index]):
            return TRAIN  # it carries a concept seen on this image only: that must be learnt
        if (want[VAL][concept] > 0) != (want[TRAIN][concept] > 0):
            return VAL if want[VAL][concept] > 0 else TRAIN
        need = {
            side_: sum(want[side_][c] / max(target[side_][c], 1) for c in labels[index])
            for side_ in (VAL, TRAIN)
        }
        if need[VAL] != need[TRAIN]:
            return VAL if need[VAL] > need[TRAIN] else TRAIN
        images = {side_: want_images[side_] / max(target_images[side_], 1) for side_ in (VAL, TRAIN)}
        if images[VAL] != images[TRAIN]:
            return VAL if images[VAL] > images[TRAIN] else TRAIN
        return VAL if _draw(seed, keys[index], "tie") < fraction else TRAIN

    remaining = [i for i in new if labels[i]]
    while remaining:
        left: dict[str, int] = defaultdict(int)
        for i in remaining:
            for c in labels[i]:
                left[c] += 1
        # The rarest concept among the unplaced images goes first (ties: by name, deterministic).
        concept = min(left, key=lambda c: (left[c], c))
        carrying = [i for i in remaining if concept in labels[i]]
        for index in carrying:
            place(index, choose(index, concept))
        placed = set(carrying)
        remaining = [i for i in remaining if i not in placed]
    for index in (i for i in new if not labels[i]):  # without concept: by each side's share of images
        place(index, VAL if want_images[VAL] > want_images[TRAIN] else TRAIN)

    movable = set(new)
    _repair(keys, labels, carriers, side, movable=movable, concepts=concepts)

    on_kept = {c for index, names in enumerate(labels) if index not in movable for c in names}
    warnings = []
    for c in concepts:
        n_train = sum(1 for i in carriers[c] if side[i] == TRAIN)
        n_val = sum(1 for i in carriers[c] if side[i] == VAL)
        if n_train == 0 or n_val == 0:
            if totals[c] < 2:
                reason = f"only {totals[c]} image"
            elif c in on_kept:
                reason = "the images already placed allow no other way"
            else:
                reason = "each of its images also shows a concept seen on that image only, which stays in training"
            warnings.append(f"concept {c!r} is not on both sides ({n_train} training, {n_val} validation; {reason})")
    train = [s for s, chosen in zip(items, side) if chosen == TRAIN]
    val = [s for s, chosen in zip(items, side) if chosen == VAL]
    return _sorted(train), _sorted(val), warnings


def _repair(
    keys: list[str], labels: list[list[str]], carriers: Mapping[str, list[int]], side: list[str | None], *,
    movable: set[int], concepts: list[str],
) -> None:
    """Move single new images so that each concept with 2+ images is on both sides, when that breaks no other one."""
    for concept in concepts:
        carrying = carriers[concept]
        if len(carrying) < 2:
            continue
        for empty in (VAL, TRAIN):
            if any(side[i] == empty for i in carrying):
                continue
            other = TRAIN if empty == VAL else VAL
            candidates = [i for i in carrying if i in movable]
            # Prefer the image whose move leaves every one of its concepts still on the side it leaves.
            for index in sorted(candidates, key=lambda i: (len(labels[i]), keys[i])):
                safe = all(
                    any(side[o] == other and o != index for o in carriers[c])
                    # A concept on one image only may leave validation, never training (it must be learnt).
                    or (len(carriers[c]) < 2 and other == VAL)
                    for c in labels[index]
                )
                if safe:
                    side[index] = empty
                    break


# --- shared


def content_keyed(samples: list[Sample]) -> tuple[list[Sample], Callable[[list[Sample]], list[Sample]]]:
    """The samples named by their files' sha256 (one per distinct content), and the function that turns
    a split of those back into the original samples. Files with identical bytes land on one side."""
    by_digest: dict[str, list[Sample]] = {}
    for sample in samples:
        by_digest.setdefault(file_sha256(sample.path), []).append(sample)
    keyed = [Sample(Path(digest), group[0].labels) for digest, group in by_digest.items()]

    def back(side: list[Sample]) -> list[Sample]:
        return _sorted([original for s in side for original in by_digest[s.path.as_posix()]])

    return keyed, back


def _target(n: int, fraction: float) -> int:
    """Validation images wanted out of ``n``: about the fraction, but at least 1 and leaving at least 1 for training."""
    if n < 2:
        return 0
    return min(max(round(n * fraction), 1), n - 1)


def _draw(seed: int, key: str, purpose: str = "order") -> float:
    """A number in [0, 1) fixed by the seed and the sample's key (its path) alone."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")


def _key(sample: Sample) -> str:
    path = sample.path  # already a Path nearly always: making another one per call was most of a 100k-image split
    return path.as_posix() if isinstance(path, PurePath) else Path(path).as_posix()


def _sorted(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.path.as_posix(), s.labels))


def _names(labels: list[str]) -> str:
    return ", ".join(f"'{label}'" for label in labels)


def content_keyed_multilabel_split(samples: list[Sample], fraction: float, seed: int, *, classes: list[str]
                                   ) -> tuple[list[Sample], list[Sample], list[str]]:
    """:func:`multilabel_split` of samples keyed by their files' content (where the files lie does not move
    the split): tagging's split, and detection's on the concepts each image shows."""
    keyed, back = content_keyed(samples)
    train, val, warnings = multilabel_split(keyed, fraction, seed, classes=classes)
    return back(train), back(val), warnings
