"""Settings suggested from the data, each with its reason: the specification's rules of thumb, applied.

One function (:func:`suggest_settings`) for the CLI (``visiontrain suggest``), the API and the studio. It
reads a :class:`DataCounts`: the images per concept on each side of the *real* train/validation split
(the task's own seeded split at a given fraction, or the validation set that was fixed, untouched),
and knows nothing of HTTP, databases or files.

The rules, and why (the thresholds in one place, shared with :mod:`visiontrain.data.checks`):

- **validation_split**: the smallest share, in steps of 5% between 10% and 40%, that holds out at
  least ``MIN_VALIDATION_IMAGES_PER_CONCEPT`` (15) images of the smallest concept: about 0.4 with ~40
  images per concept, 0.1 from about 150. A fixed validation set (``--val``, a dataset's ``val/``
  folder, a view's stored split or images the user fixed) is left untouched and its real counts reported.
- **batch_size**: 8 under 100 training images (more steps per epoch), 16 near 200 (to 300), 32 to
  1,000, 64 above. Detection keeps its own (``TASK_DEFAULTS``: each image is large), and its epochs.
- **fine_tune**: off under 300 training images of the smallest concept (for everyday objects the
  pretrained features suffice and retraining layers overfits); on from 300, retraining the task's
  default number of last blocks; from 1,000, twice as many. The fine-tuning rate at most a tenth of the head's.
- **augmented_copies**: augmentation on (at least the task's default number of copies).
- **questions**: the transforms that can change what an image shows (a mirrored image when left and
  right matter, colour changes when colour tells concepts apart, upside-down images that never occur)
  are asked about, each answer naming the settings it sets.
- **balance_concepts** (not detection): offered when the largest concept has ``IMBALANCE_RATIO`` (3x)
  the training images of the smallest.
- **warnings**: fewer than ``MIN_TRAINING_IMAGES_PER_CONCEPT`` (20) training or
  ``MIN_VALIDATION_IMAGES_PER_CONCEPT`` (15) validation images of a concept, and the imbalance.

Counts are images: classification, images of each class; tagging, images carrying each concept (and
images without concept, all-negative examples); detection, images with a box of each concept (images
without boxes only validate, as negatives).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from visiontrain.data.checks import IMBALANCE_RATIO, MIN_TRAINING_IMAGES_PER_CONCEPT, MIN_VALIDATION_IMAGES_PER_CONCEPT
from visiontrain.data.dataset import DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings

# validation_split: the range, the step, and what it aims to hold out (the validation warning's threshold).
SPLIT_RANGE = (0.1, 0.4)
SPLIT_STEP = 0.05
# batch_size by training images: below each bound, that batch; above the last, LARGE_BATCH.
BATCH_SIZES = ((100, 8), (300, 16), (1000, 32))
LARGE_BATCH = 64
# Fine-tuning by training images of the smallest concept: from the first, the task's last blocks; from the second, twice as many.
FINE_TUNE_FROM = 300
MORE_LAYERS_FROM = 1000
# Backbone: images per second each offline backbone turns into features on the 2-core CPU we measure on
# (decoding included; benchmarks/quality.py, docs/benchmarks.md), and the extra seconds a larger one may
# cost before it is not suggested. Lite2 was at least as accurate as Lite0 on every set measured, better on two.
FEATURE_IMAGES_PER_S = {"efficientnet_lite0": 107.0, "efficientnet_lite1": 68.0, "efficientnet_lite2": 53.0}
# Lite1 is not offered: with today's defaults it was less accurate than Lite0 on two of the three sets.
LARGER_BACKBONE = "efficientnet_lite2"
LARGER_BACKBONE_BUDGET_S = 60.0


@dataclass(frozen=True)
class SplitCounts:
    """Images on each side of a train/validation split: per concept, in all, and without concept."""

    train: dict[str, int]
    val: dict[str, int]
    train_images: int
    val_images: int
    train_without_concept: int = 0
    val_without_concept: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": self.train, "validation": self.val, "train_images": self.train_images, "validation_images": self.val_images,
            "without_concept": {"train": self.train_without_concept, "validation": self.val_without_concept},
        }


@dataclass(frozen=True)
class DataCounts:
    """What the suggestion reads: the task, its concepts, and the split's counts.

    ``split(fraction)`` gives the counts of the task's real split at that fraction. ``fixed``: what fixed
    the validation set (then ``split`` ignores the fraction and the split is left untouched); None when
    ``validation_split`` decides.
    """

    task: str
    concepts: tuple[str, ...]
    split: Callable[[float], SplitCounts]
    fixed: str | None = None


@dataclass(frozen=True)
class Answer:
    answer: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Question:
    """A question the data cannot answer; each answer names the settings it sets."""

    setting: str
    question: str
    why: str
    answers: tuple[Answer, ...]

    def as_dict(self, current: Mapping[str, Any]) -> dict[str, Any]:
        chosen = next((a.answer for a in self.answers if all(current.get(k) == v for k, v in a.settings.items())), None)
        return {"setting": self.setting, "question": self.question, "why": self.why, "current": chosen,
                "answers": [{"answer": a.answer, "settings": a.settings} for a in self.answers]}


@dataclass
class Suggestion:
    settings: dict[str, Any]
    reasons: dict[str, str]
    kept: dict[str, str] = field(default_factory=dict)
    questions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "reasons": self.reasons, "kept": self.kept, "questions": self.questions,
                "warnings": self.warnings, "counts": self.counts}


def suggest_settings(data: DataCounts, base: TrainingSettings | Mapping[str, Any] | None = None) -> Suggestion:
    """Settings suited to ``data``, each with its reason (module text), over ``base`` (what the person set so far).

    Raises :class:`DataError` when there is nothing to suggest for (too few concepts with images).
    """
    from visiontrain.tasks import get_task

    task = get_task(data.task)
    base_values = dict(base.model_dump(exclude_unset=True) if isinstance(base, TrainingSettings) else (base or {}))
    current = TrainingSettings.for_task(data.task, base_values)
    defaults = TrainingSettings.for_task(data.task, {})
    detection = task.model == "detector"
    unit = "images with boxes of" if detection else "images of"

    pooled = data.split(current.validation_split)
    present = [c for c in data.concepts if pooled.train.get(c, 0) + pooled.val.get(c, 0) > 0]
    if len(present) < task.min_classes:
        what = "images with boxes" if detection else "annotated images"
        raise DataError(
            f"suggesting settings for a {data.task} model needs {what} of at least {task.min_classes} concept(s); "
            f"this data has {len(present)}: annotate more images first"
        )
    values: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    kept: dict[str, str] = {}
    warnings: list[str] = []

    # --- validation split
    if data.fixed is not None:
        counts = pooled
        kept["validation_split"] = (
            f"untouched: {data.fixed} holds {counts.val_images} image(s) for validation, {counts.train_images} for training"
        )
    else:
        total = {c: pooled.train.get(c, 0) + pooled.val.get(c, 0) for c in present}
        smallest, n = min(total.items(), key=lambda kv: (kv[1], kv[0]))
        fraction = _split_for(n)
        counts = data.split(fraction)
        held = counts.val.get(smallest, 0)
        values["validation_split"] = fraction
        if held < MIN_VALIDATION_IMAGES_PER_CONCEPT:
            reasons["validation_split"] = (
                f"only {n} {unit} '{smallest}': {fraction:.0%}, the most held out without starving training, keeps {held} "
                f"of them for validation (fewer than {MIN_VALIDATION_IMAGES_PER_CONCEPT})"
            )
        else:
            reasons["validation_split"] = (
                f"the smallest share (10% to 40%) that keeps at least {MIN_VALIDATION_IMAGES_PER_CONCEPT} {unit} the smallest "
                f"concept, '{smallest}' ({n}), for validation: {held} of them"
            )

    train_counts = {c: counts.train.get(c, 0) for c in data.concepts}
    val_counts = {c: counts.val.get(c, 0) for c in data.concepts}
    trained = {c: n for c, n in train_counts.items() if n > 0}
    rarest, fewest = min(trained.items(), key=lambda kv: (kv[1], kv[0])) if trained else ("", 0)

    # --- batch size (a detector keeps its own small batches, and its epochs)
    if detection:
        kept["batch_size"] = f"detection's own: {defaults.batch_size} (each image is large; many boxes give many steps)"
    else:
        images = counts.train_images
        batch = next((size for bound, size in BATCH_SIZES if images < bound), LARGE_BATCH)
        values["batch_size"] = batch
        reasons["batch_size"] = (
            f"{images} training images: batches of {batch} give {_steps(math.ceil(images / batch))} per epoch"
            + (" (few images: small batches, more steps)" if batch == BATCH_SIZES[0][1] else "")
        )

    # --- fine-tuning
    # Fine-tuning's rate is left to follow the head's (empty: a tenth of it), unless one was set above that.
    set_rate = current.fine_tune_learning_rate
    fine_rate = {} if set_rate is None or current.learning_rate == "auto" or set_rate <= current.learning_rate / 10 else \
        {"fine_tune_learning_rate": float(f"{current.learning_rate / 10:.3g}")}
    if fewest < FINE_TUNE_FROM and not detection:
        # The specification's rule of thumb says none here, for fear of overfitting; measured on small sets
        # (docs/benchmarks.md, 20-130 images per concept) fine-tuning the last blocks gained up to 6 points and
        # never cost any, because the fine-tuned model is kept only when it beats the head's on validation.
        values.update(fine_tune=True, retrained_layers=defaults.retrained_layers, **fine_rate)
        reasons["fine_tune"] = (
            f"{fewest} training {unit} '{rarest}' (under {FINE_TUNE_FROM}): few enough that retraining much of the backbone "
            f"could overfit, so only the last {defaults.retrained_layers} blocks, and the result is kept only if it beats "
            "the head alone on validation (measured: it helped on small sets of everyday objects and never hurt)"
        )
        reasons["retrained_layers"] = f"under {FINE_TUNE_FROM} images per concept: the default last {defaults.retrained_layers} blocks"
        if fine_rate:
            reasons["fine_tune_learning_rate"] = "at most a tenth of the head's learning rate, so the pretrained features are kept"
    elif fewest < FINE_TUNE_FROM:
        values["fine_tune"] = False
        reasons["fine_tune"] = (
            f"{fewest} training {unit} '{rarest}' (under {FINE_TUNE_FROM}): a detector retrains its body on whole images "
            "each step, slow for what so few images can teach it; its frozen pretrained body is enough"
        )
    else:
        layers = defaults.retrained_layers * (2 if fewest >= MORE_LAYERS_FROM else 1)
        values.update(fine_tune=True, retrained_layers=layers, **fine_rate)
        reasons["fine_tune"] = (
            f"at least {fewest} training {unit} each concept: enough to adapt the backbone without overfitting"
        )
        reasons["retrained_layers"] = (
            f"{'from ' + str(MORE_LAYERS_FROM) if fewest >= MORE_LAYERS_FROM else f'{FINE_TUNE_FROM} to {MORE_LAYERS_FROM}'} "
            f"images per concept: the last {layers} blocks"
        )
        if fine_rate:
            reasons["fine_tune_learning_rate"] = "at most a tenth of the head's learning rate, so the pretrained features are kept"

    # --- augmentation on
    copies = max(current.augmented_copies, defaults.augmented_copies)
    values["augmented_copies"] = copies
    reasons["augmented_copies"] = (
        f"augmentation on: each training image is also seen as {copies} altered cop{'y' if copies == 1 else 'ies'} (flips, "
        "colour, zoom), which teaches the model what does not change a concept; the questions say which alterations fit your images"
    )

    # --- backbone: the larger offline one when its extra feature time stays within the budget (head tasks; a
    # backbone chosen by hand, or a detector's, is left alone)
    if not detection and "backbone" not in current.model_fields_set and current.pretrained and not current.weights_path:
        passes = counts.train_images * (1 + copies) + counts.val_images
        extra = passes / FEATURE_IMAGES_PER_S[LARGER_BACKBONE] - passes / FEATURE_IMAGES_PER_S["efficientnet_lite0"]
        if extra <= LARGER_BACKBONE_BUDGET_S:
            values["backbone"] = LARGER_BACKBONE
            reasons["backbone"] = (
                f"{passes} images to turn into features (originals and augmented copies): {LARGER_BACKBONE} costs about "
                f"{extra:.0f} s more than efficientnet_lite0 on a 2-core CPU (less on a GPU), and was at least as accurate "
                "on every set measured, better on two (docs/benchmarks.md)"
            )
        else:
            kept["backbone"] = (
                f"efficientnet_lite0: with {passes} images to turn into features, {LARGER_BACKBONE} would add about "
                f"{extra:.0f} s on a 2-core CPU; choose it for a little more accuracy at that cost"
            )

    # --- imbalance
    if len(trained) >= 2 and max(trained.values()) >= IMBALANCE_RATIO * fewest:
        largest, most = max(trained.items(), key=lambda kv: (kv[1], kv[0]))
        warnings.append(
            f"concepts are imbalanced: '{largest}' has {most / fewest:.1f}x the training images of '{rarest}' "
            f"({most} vs {fewest}): the model will lean towards '{largest}'; annotate more of '{rarest}'"
        )
        if not detection:
            values["balance_concepts"] = True
            reasons["balance_concepts"] = (
                f"'{largest}' has {most / fewest:.1f}x the training images of '{rarest}' (from {IMBALANCE_RATIO:g}x): "
                "weighting each concept by its rarity makes a rare one count as much as a common one"
            )

    # --- too few images
    images_of = "images with boxes" if detection else "images"
    few_train = [f"'{c}' {n}" for c, n in train_counts.items() if n < MIN_TRAINING_IMAGES_PER_CONCEPT]
    if few_train:
        warnings.append(
            f"fewer than {MIN_TRAINING_IMAGES_PER_CONCEPT} training {images_of} for {_listed(few_train)}: the model barely "
            "learns such a concept; annotate more"
        )
    few_val = [f"'{c}' {n}" for c, n in val_counts.items() if n < MIN_VALIDATION_IMAGES_PER_CONCEPT]
    if few_val:
        fix = "add validation images" if data.fixed else "annotate more images"
        warnings.append(
            f"fewer than {MIN_VALIDATION_IMAGES_PER_CONCEPT} validation {images_of} for {_listed(few_val)}: its accuracy "
            f"moves by several points with each image; {fix}"
        )
    if detection and counts.train_without_concept:
        warnings.append(f"{counts.train_without_concept} training image(s) without boxes only validate (as negatives), "
                        "they are not trained on")

    TrainingSettings.for_task(data.task, {**base_values, **values})  # a suggestion is itself valid settings
    after = {**current.model_dump(mode="json"), **values}
    return Suggestion(
        settings=values, reasons={k: v for k, v in reasons.items() if k in values}, kept=kept,
        questions=[q.as_dict(after) for q in _questions(defaults)], warnings=warnings,
        counts={"task": data.task, "validation_set": data.fixed or f"a {values.get('validation_split', current.validation_split):.0%} "
                f"split, seed {current.seed}", **counts.as_dict()},
    )


def _split_for(smallest: int) -> float:
    """The smallest share, in SPLIT_STEP steps within SPLIT_RANGE, holding out MIN_VALIDATION_IMAGES_PER_CONCEPT of ``smallest``."""
    low, high = SPLIT_RANGE
    wanted = MIN_VALIDATION_IMAGES_PER_CONCEPT / max(1, smallest)
    steps = math.ceil(round(wanted / SPLIT_STEP, 9))
    return round(min(high, max(low, steps * SPLIT_STEP)), 2)


def _questions(defaults: TrainingSettings) -> list[Question]:
    """What the data cannot tell: the alterations that could change what an image shows."""
    return [
        Question("horizontal_flip", "Does left or right matter in your images?",
                 "a mirrored image must show the same concept (it does not for a left vs a right hand, arrows, text)",
                 (Answer("yes, left and right matter", {"horizontal_flip": False}),
                  Answer("no, a mirror image shows the same thing", {"horizontal_flip": True}))),
        Question("color", "Does colour tell your concepts apart?",
                 "colour changes must not change the concept (they do for ripe vs unripe fruit, traffic lights)",
                 (Answer("yes, colour matters", {"color": 0.0}),
                  Answer("no, shape and texture do", {"color": defaults.color}))),
        Question("vertical_flip", "Can your images be seen upside down (aerial, microscope or top-down photos)?",
                 "upside-down copies help only when such images occur; otherwise they teach a view the model never meets",
                 (Answer("yes, any way up", {"vertical_flip": True}),
                  Answer("no, they have a top and a bottom", {"vertical_flip": False}))),
    ]


def _steps(n: int) -> str:
    return f"{max(1, n)} step{'s' if n > 1 else ''}"


def _listed(items: list[str], most: int = 6) -> str:
    return f"{', '.join(items[:most])}{', ...' if len(items) > most else ''}"


# --- reading the counts


def count_split(concepts: Iterable[str], train: list[Sample], val: list[Sample], *, task: str) -> SplitCounts:
    """The counts of a split given as samples (a sample's ``labels`` are its concepts; detection's, its boxes')."""
    names = list(concepts)

    def per_concept(samples: list[Sample]) -> dict[str, int]:
        found = Counter(label for s in samples for label in set(s.labels))
        return {c: found.get(c, 0) for c in names}

    def without(samples: list[Sample]) -> int:
        return sum(1 for s in samples if not s.labels)

    return SplitCounts(train=per_concept(train), val=per_concept(val), train_images=len(train), val_images=len(val),
                       train_without_concept=without(train), val_without_concept=without(val))


def counts_from_spec(spec: DatasetSpec, *, seed: int, fixed: str = "the validation set given") -> DataCounts:
    """A dataset read from disk: its own validation set untouched, else the task's seeded split at each fraction."""
    from visiontrain.tasks import get_task

    if spec.val is not None:
        counts = count_split(spec.classes, spec.train, spec.val, task=spec.task)
        return DataCounts(spec.task, tuple(spec.classes), lambda _fraction: counts, fixed=fixed)
    task = get_task(spec.task)

    @lru_cache(maxsize=8)
    def split(fraction: float) -> SplitCounts:
        train, val, _ = task.split(spec.train, fraction, seed, spec.classes)
        return count_split(spec.classes, train, val, task=spec.task)

    return DataCounts(spec.task, tuple(spec.classes), split)


def estimated_counts(task: str, images_per_concept: Mapping[str, int], *, without_concept: int = 0) -> DataCounts:
    """Counts before any split, each concept split at the fraction (a stratified split does so to within an image).
    For rules and tests; the CLI and the platform pass their real split."""
    concepts = tuple(images_per_concept)

    def split(fraction: float) -> SplitCounts:
        val = {c: round(n * fraction) for c, n in images_per_concept.items()}
        train = {c: n - val[c] for c, n in images_per_concept.items()}
        val_without = round(without_concept * fraction)
        total = sum(images_per_concept.values()) + without_concept
        val_images = sum(val.values()) + val_without
        return SplitCounts(train, val, total - val_images, val_images, without_concept - val_without, val_without)

    return DataCounts(task, concepts, split)
