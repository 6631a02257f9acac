"""Checking a dataset before training: every image decodes, every class has enough, nothing is doubled.

Bad files are left out and reported by path (training never dies on one file); problems that
would make the model misleading (too few images, imbalance, duplicates across classes or across
train and validation) become human-readable warnings; a class with nothing to learn from is an error.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

from visiontrain.data.dataset import Rejected, Sample
from visiontrain.data.errors import DataError, ImageError
from visiontrain.data.images import open_image

# Smaller than this is a tracking pixel, a spacer or an icon, not a picture of anything: after
# resizing to the model's input it is a flat blur. 8 still admits tiny-image datasets (16x16 sprites).
MIN_IMAGE_SIDE = 8
# Enough decoded pixels to prove the file decodes, few enough that the check is quick (JPEG draft).
CHECK_DECODE_SIZE = 64
# "Enough data", one set of thresholds for every interface: these warnings (CLI, training summaries) and the
# settings suggested from the data (visiontrain.assistant). Per class (or concept): fewer training images than
# this and a model barely learns it; fewer validation images and one image moves its accuracy by over 6 points.
MIN_TRAINING_IMAGES_PER_CONCEPT = 20
MIN_VALIDATION_IMAGES_PER_CONCEPT = 15
# The largest class this many times the smallest: the model leans towards the larger one.
IMBALANCE_RATIO = 3.0
MAX_LISTED = 5
# Verdicts remembered per process (a few hundred bytes each): enough for any dataset trained at once.
MAX_REMEMBERED_VERDICTS = 200_000
_EXIF_ORIENTATION = 0x0112
_SIDES_SWAPPED = frozenset({5, 6, 7, 8})
_VERDICTS: OrderedDict[tuple[str, int, int], ImageInfo | str] = OrderedDict()
_VERDICTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageInfo:
    """An image file that decodes, and its size in pixels after EXIF orientation."""

    width: int
    height: int


def inspect_image(path: str | Path) -> ImageInfo | str:
    """The one rule for "is this file a usable training image": its size, or the reason it is not.

    Used by the importers (CLI and platform) and by :func:`check_images`. The verdict is remembered
    for the file as it is now (path, size, modification time), so a dataset read by an importer and
    then checked by the runner is decoded once, not twice.
    """
    path = Path(path)
    try:
        stat = path.stat()
        key: tuple[str, int, int] | None = (str(path.absolute()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None  # open_image gives the reason
    if key is not None:
        with _VERDICTS_LOCK:
            cached = _VERDICTS.get(key)
        if cached is not None:
            return cached
    verdict = _inspect(path)
    if key is not None:
        with _VERDICTS_LOCK:
            _VERDICTS[key] = verdict
            while len(_VERDICTS) > MAX_REMEMBERED_VERDICTS:
                _VERDICTS.popitem(last=False)
    return verdict


def _inspect(path: Path) -> ImageInfo | str:
    try:
        open_image(path, draft_size=CHECK_DECODE_SIZE)
    except ImageError as exc:
        return str(exc).replace(str(path), path.name)  # never a folder the user did not name
    try:
        # The header gives the full size (a draft decode of a JPEG is smaller) and the EXIF orientation.
        with PILImage.open(path) as header:
            width, height = header.size
            orientation = header.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - it decoded, so only the header's metadata is unreadable
        return "cannot read the image header"
    if orientation in _SIDES_SWAPPED:
        width, height = height, width
    if min(width, height) < MIN_IMAGE_SIDE:
        return f"image is only {width}x{height} pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} are needed"
    return ImageInfo(width=width, height=height)


def check_images(samples: list[Sample], *, workers: int = 2) -> tuple[list[Sample], list[Rejected]]:
    """Decode every image; return (the ones that decode, the rejected ones with the reason).

    The order of ``samples`` is kept. Pillow releases the GIL while decoding, so threads help.
    Images an importer has already inspected (unchanged since) are not decoded again.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="image-check") as pool:
        verdicts = list(pool.map(inspect_image, [s.path for s in samples]))
    kept = [s for s, verdict in zip(samples, verdicts) if isinstance(verdict, ImageInfo)]
    rejected = [Rejected(s.path, verdict) for s, verdict in zip(samples, verdicts) if isinstance(verdict, str)]
    return kept, rejected


def class_counts(classes: list[str], samples: list[Sample]) -> dict[str, int]:
    """Images per class, in ``classes`` order, zero for a class with none."""
    counts = Counter(s.label for s in samples)
    return {c: counts.get(c, 0) for c in classes}


def require_training_images(classes: list[str], train: list[Sample]) -> None:
    """Raise :class:`DataError` when a class has no training image left (all missing or rejected)."""
    empty = [c for c, n in class_counts(classes, train).items() if n == 0]
    if empty:
        names = ", ".join(f"'{c}'" for c in empty)
        raise DataError(
            f"class {names} has no usable training images (missing or rejected files): "
            "add images of it or remove the class"
        )


def dataset_warnings(classes: list[str], train: list[Sample], val: list[Sample] | None) -> list[str]:
    """Human-readable warnings about class sizes, imbalance and duplicate files."""
    val = val or []
    warnings: list[str] = []
    train_counts = class_counts(classes, train)
    for label, count in train_counts.items():
        if count < MIN_TRAINING_IMAGES_PER_CONCEPT:
            warnings.append(
                f"class '{label}' has only {count} training image{'s' if count != 1 else ''}; "
                f"at least {MIN_TRAINING_IMAGES_PER_CONCEPT} are recommended: add images of '{label}'"
            )
    if val:
        val_counts = class_counts(classes, val)
        missing = [c for c, n in val_counts.items() if n == 0]
        if missing:
            names = ", ".join(f"'{c}'" for c in missing)
            warnings.append(f"class {names} has no validation images: its accuracy cannot be measured")
        few = [f"'{c}': {n}" for c, n in val_counts.items() if 0 < n < MIN_VALIDATION_IMAGES_PER_CONCEPT]
        if few:
            warnings.append(
                f"{len(few)} class(es) have fewer than {MIN_VALIDATION_IMAGES_PER_CONCEPT} validation images "
                f"({', '.join(few[:MAX_LISTED])}{', ...' if len(few) > MAX_LISTED else ''}): their accuracy moves by "
                "several points with each image; hold out more (a larger validation_split) or add images"
            )
    imbalance = _imbalance_warning(train_counts)
    if imbalance:
        warnings.append(imbalance)
    warnings.extend(duplicate_warnings(train, val))
    return warnings


def _imbalance_warning(counts: dict[str, int]) -> str | None:
    present = {c: n for c, n in counts.items() if n > 0}
    if len(present) < 2:
        return None
    ordered = sorted(present.items(), key=lambda item: (-item[1], item[0]))
    (largest, most), (smallest, fewest) = ordered[0], ordered[-1]
    ratio = most / fewest
    if ratio < IMBALANCE_RATIO:
        return None
    shown = ordered if len(ordered) <= 2 * MAX_LISTED else [*ordered[:MAX_LISTED], *ordered[-MAX_LISTED:]]
    listing = ", ".join(f"{c}: {n}" for c, n in shown)
    return (
        f"classes are imbalanced: '{largest}' has {ratio:.1f}x as many training images as '{smallest}' "
        f"({listing}); the model will lean towards the larger classes: add images of the smaller ones"
    )


def duplicate_warnings(train: list[Sample], val: list[Sample]) -> list[str]:
    """Files with identical bytes: under two labels (contradictory) or in both train and val (leak)."""
    entries = [(s, "train") for s in train] + [(s, "val") for s in val]
    groups = _identical_files([s.path for s, _ in entries])
    by_path: dict[Path, list[tuple[Sample, str]]] = defaultdict(list)
    for sample, part in entries:
        by_path[sample.path].append((sample, part))

    grouped = {p for group in groups for p in group}
    # The very same file listed twice (e.g. a validation folder inside the training folder).
    groups += [[p] for p, members in by_path.items() if len(members) > 1 and p not in grouped]

    conflicting: list[str] = []
    leaked: list[str] = []
    copies = 0
    for paths in groups:
        members = [m for p in paths for m in by_path[p]]
        labels = sorted({s.label for s, _ in members})
        parts = {part for _, part in members}
        described = " = ".join(
            f"{p} ({', '.join(sorted({s.label for s, _ in by_path[p]}))}: "
            f"{' and '.join(sorted({part for _, part in by_path[p]}))})"
            for p in paths
        )
        if len(labels) > 1:
            conflicting.append(described)
        elif len(parts) > 1:
            leaked.append(described)
        else:
            copies += len(members) - 1
    warnings = []
    if conflicting:
        warnings.append(
            f"{len(conflicting)} image(s) appear under different classes with identical bytes: "
            f"{_listing(conflicting)}; keep each image in one class"
        )
    if leaked:
        warnings.append(
            f"{len(leaked)} image(s) are in both training and validation sets (identical bytes), "
            f"which inflates validation accuracy: {_listing(leaked)}"
        )
    if copies:
        warnings.append(
            f"{copies} file(s) are exact copies of another image in the same class; they count twice in training"
        )
    return warnings


def _identical_files(paths: list[Path]) -> list[list[Path]]:
    """Groups of distinct paths with identical contents. Only files sharing a size are read."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in dict.fromkeys(paths):
        try:
            by_size[path.stat().st_size].append(path)
        except OSError:
            continue  # missing files are reported by the importer
    by_digest: dict[str, list[Path]] = defaultdict(list)
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        for path in same_size:
            try:
                digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
            except OSError:
                continue
            by_digest[digest].append(path)
    return [group for group in by_digest.values() if len(group) > 1]


def _listing(items: list[str]) -> str:
    more = f"; and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more
