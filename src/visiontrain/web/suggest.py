"""Suggest training settings from a dataset's size and balance ("suggest settings for my data").

A pure function of the number of annotated images per concept: no database, no HTTP. The platform
exposes it (the studio's Train form calls it) and the CLI can too. Every suggested value comes with
the reason, shown next to the field, so a person learns why.

The heuristic, and why:

- **Validation split**: enough held-out images to measure accuracy per class (about 10 per class of
  the smallest class), but never starving training: 10% to 30% of the images, 10% from 5,000 up.
- **Batch size**: small datasets need many optimisation steps per epoch, so the batch is the power
  of two near a tenth of the training images, between 8 and 64.
- **Epochs**: small datasets converge in more (cheap) epochs; early stopping ends the run anyway.
- **Augmentation**: the fewer images per class, the more augmented copies (3 under 50 per class,
  2 under 200, 1 under 1,000, 0 above); imbalance adds one copy because the rare classes need it most.
- **Fine-tuning**: retraining backbone layers overfits small data; it is suggested only from about
  100 images per class and 1,000 in total, with the fine-tuning rate a tenth of the head's.

Settings the data says nothing about (backbone, optimizer, schedule) keep their defaults.

A detector (``task="detection"``) finds objects of even one concept (the rest is background), and
keeps its own batch size and epochs (``TASK_DEFAULTS``: each image is large, and many boxes per image
give many steps); the split, augmentation and fine-tuning rules are the same, counted in images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from visiontrain.settings import TrainingSettings

IMBALANCE_RATIO = 3.0
MIN_IMAGES_PER_CLASS = 5


@dataclass
class Suggestion:
    settings: dict[str, Any]
    reasons: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "reasons": self.reasons, "warnings": self.warnings}


def suggest_settings(
    images_per_concept: Mapping[str, int], base: TrainingSettings | None = None, *, task: str = "classification"
) -> Suggestion:
    """Settings suited to a dataset with these annotated image counts per concept.

    ``base``: the settings the person has so far (the learning rate is read from it); the task's defaults if None.
    Raises ValueError when there is nothing to train on (fewer than two concepts with images; one for detection).
    """
    detection = task == "detection"
    counts = {name: int(n) for name, n in images_per_concept.items() if int(n) > 0}
    if detection and not counts:
        raise ValueError("suggesting settings needs images with boxes: this dataset has none, annotate images first")
    if not detection and len(counts) < 2:
        raise ValueError(
            "suggesting settings needs annotated images of at least two concepts; "
            f"this dataset has {len(counts)} concept(s) with images: annotate more images first"
        )
    base = (base or TrainingSettings()).with_task_defaults(task)
    total = sum(counts.values())
    smallest_name, smallest = min(counts.items(), key=lambda kv: kv[1])
    largest = max(counts.values())
    per_class = total / len(counts)
    imbalance = largest / smallest

    values: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    warnings: list[str] = []

    split = 0.1 if total >= 5000 else min(0.3, max(0.1, 10 * len(counts) / total))
    split = round(split, 2)
    values["validation_split"] = split
    reasons["validation_split"] = (
        f"{total} images in {len(counts)} concepts: {split:.0%} keeps about "
        f"{max(1, round(smallest * split))} image(s) of the smallest concept for validation"
    )

    train_images = max(1, round(total * (1 - split)))
    if not detection:  # a detector keeps its own small batches and its epochs
        batch = 2 ** round(math.log2(max(1, train_images / 10)))
        batch = min(64, max(8, batch))
        values["batch_size"] = batch
        reasons["batch_size"] = f"about {max(1, math.ceil(train_images / batch))} steps per epoch over {train_images} training images"

        epochs = 30 if train_images < 500 else 20 if train_images < 5000 else 10
        values["epochs"] = epochs
        reasons["epochs"] = f"{'small' if epochs == 30 else 'medium' if epochs == 20 else 'large'} dataset; early stopping ends the run when accuracy stops rising"
    values["early_stopping"] = True

    copies = 3 if per_class < 50 else 2 if per_class < 200 else 1 if per_class < 1000 else 0
    if imbalance >= IMBALANCE_RATIO and copies < 4:
        copies += 1
    values["augmented_copies"] = copies
    reasons["augmented_copies"] = (
        f"{per_class:.0f} images per concept on average"
        + (f"; concepts are imbalanced ({imbalance:.1f}x), so one more copy" if imbalance >= IMBALANCE_RATIO else "")
    )

    fine_tune = smallest >= 100 and total >= 1000
    values["fine_tune"] = fine_tune
    if fine_tune:
        values["fine_tune_learning_rate"] = float(f"{base.learning_rate / 10:.3g}")
        values["retrained_layers"] = max(1, base.retrained_layers)
        reasons["fine_tune"] = f"at least {smallest} images per concept: enough to adapt the backbone without overfitting"
    else:
        reasons["fine_tune"] = f"only {smallest} images of '{smallest_name}': retraining the backbone would overfit (from ~100 per concept)"

    if imbalance >= IMBALANCE_RATIO:
        warnings.append(
            f"'{smallest_name}' has {smallest} images, {imbalance:.1f}x fewer than the largest concept: "
            "annotate more of it for a fairer model"
        )
    if smallest < MIN_IMAGES_PER_CLASS:
        warnings.append(f"'{smallest_name}' has only {smallest} image(s): at least {MIN_IMAGES_PER_CLASS * 4} per concept give a usable model")

    merged = base.model_dump(mode="json") | values
    TrainingSettings(**merged)  # the suggestion must itself be valid settings
    return Suggestion(settings=values, reasons=reasons, warnings=warnings)


def suggest_for_view(session: Any, *, view: Any, concepts: list[str] | None = None, base: TrainingSettings | None = None) -> Suggestion:
    """The suggestion for a view's annotated images (``concepts``: the model's, default all of the view's).

    ``session``/``view``: a SQLAlchemy session and a ``store.models.View``; counts come from
    ``services.views.list_concepts`` (images annotated with each concept).
    """
    from visiontrain.services.errors import InvalidInput
    from visiontrain.services.views import list_concepts

    task = str(getattr(view.kind, "value", view.kind))
    counts = {concept.name: count for concept, count in list_concepts(session, view=view)}
    if concepts is not None:
        unknown = [c for c in concepts if c not in counts]
        if unknown:
            raise InvalidInput(f"unknown concept(s) {', '.join(map(repr, unknown))} in view {view.id}", loc=("body", "concepts"))
        counts = {c: counts[c] for c in concepts}
    try:
        return suggest_settings(counts, base=base, task=task)
    except ValueError as exc:
        raise InvalidInput(str(exc), loc=("body", "concepts")) from None
