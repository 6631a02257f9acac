"""Multi-label tagging: zero or more concepts per image.

Sigmoid outputs and binary cross-entropy (optionally weighting each concept's positives by its
rarity, ``balance_concepts``). An image annotated "without concept" is an all-negative example.
Each epoch reports ``val_loss``, ``val_map`` (the monitor: macro average precision over concepts with
a positive validation image), ``val_accuracy`` (per-concept accuracy at 0.5) and ``val_exact_match``.
After training a decision threshold per concept is chosen at its best validation F1, stored in the
checkpoint and used by predict. Report schema (``evaluation.json``)::

    {"task": "tagging", "num_images", "classes", "map", "loss" (mean binary cross-entropy),
     "accuracy": {"per_concept", "exact_match"} (at 0.5), "accuracy_at_thresholds": {...},
     "thresholds": {concept: t}, "per_concept": [{"concept", "precision", "recall", "f1", "ap",
     "support", "threshold"}] (at the thresholds), "concepts_without_positives", "macro",
     "pr_curves": {concept: {"precision", "recall", "thresholds"}},
     "errors": {concept: {"false_positives": [{"path", "probability"}], "false_negatives": [...]}},
     "predictions": [{"path", "true", "predicted", "probabilities": {concept: p}}]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelExactMatch, MultilabelStatScores

from visiontrain.data.checks import MIN_TRAINING_IMAGES_PER_CONCEPT as MIN_IMAGES_PER_CONCEPT
from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings
from visiontrain.tasks.base import HeadTask, register_task

# Rarer concepts get their positives weighted up by negatives/positives, at most this much (a concept
# on 1 of 1000 images would otherwise get a weight so large that one image dominates the loss).
MAX_POSITIVE_WEIGHT = 50.0


@register_task
class Tagging(HeadTask):
    name = "tagging"
    monitor = "val_map"
    activation = "sigmoid"
    min_classes = 1
    pictures = ("pr_curves.png",)

    def check_samples(self, classes: list[str], samples: list[Sample], where: str) -> None:
        known = set(classes)
        for sample in samples:
            unknown = [label for label in sample.labels if label not in known]
            if unknown:
                raise DataError(f"{sample.path} in {where} has concept(s) {unknown} that are not among the concepts {classes}")
            if len(set(sample.labels)) != len(sample.labels):
                raise DataError(f"{sample.path} in {where} lists a concept twice: {list(sample.labels)}")

    def split(self, samples: list[Sample], fraction: float, seed: int, classes: list[str]) -> tuple[list[Sample], list[Sample], list[str]]:
        from visiontrain.data.split import content_keyed_multilabel_split

        return content_keyed_multilabel_split(samples, fraction, seed, classes=classes)

    def check_split(self, classes: list[str], train: list[Sample], val: list[Sample]) -> list[str]:
        train_counts = _positives(classes, train)
        empty = [c for c, n in train_counts.items() if n == 0]
        if empty:
            raise DataError(
                f"concept(s) {', '.join(repr(c) for c in empty)} have no training image: tag some training images "
                "with them or leave them out of the model"
            )
        warnings = []
        val_counts = _positives(classes, val)
        unmeasured = [c for c, n in val_counts.items() if n == 0]
        if unmeasured:
            warnings.append(
                f"concept(s) {', '.join(repr(c) for c in unmeasured)} have no validation image: their precision cannot be "
                "measured and their threshold stays 0.5 (add images with them)"
            )
        few = [f"'{c}': {n}" for c, n in train_counts.items() if 0 < n < MIN_IMAGES_PER_CONCEPT]
        if few:
            warnings.append(
                f"{len(few)} concept(s) have fewer than {MIN_IMAGES_PER_CONCEPT} training images ({', '.join(few[:10])}"
                f"{', ...' if len(few) > 10 else ''}): add images of them, or turn on balance_concepts"
            )
        without = sum(1 for s in train if not s.labels)
        if without == len(train):
            raise DataError("every training image is 'without concept': tag images with the concepts to learn")
        return warnings

    def targets(self, samples: list[Sample], classes: list[str]) -> torch.Tensor:
        index = {name: i for i, name in enumerate(classes)}
        targets = torch.zeros(len(samples), len(classes), dtype=torch.float32)
        for row, sample in enumerate(samples):
            for label in sample.labels:
                targets[row, index[label]] = 1.0
        return targets

    def training_loss(self, settings: TrainingSettings, train_targets: torch.Tensor) -> nn.Module:
        if not settings.balance_concepts:
            return nn.BCEWithLogitsLoss()
        return nn.BCEWithLogitsLoss(pos_weight=positive_weights(train_targets))

    def initialize_head(self, head: nn.Module, train_targets: torch.Tensor) -> None:
        # Start each concept's output at its share of training images (log prior odds) instead of 0.5:
        # most concepts are absent from most images, and a head starting at 0.5 spends its first
        # epochs only learning that, which short runs on small data never get past.
        output = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        prior = train_targets.float().mean(dim=0).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            output.bias.copy_(torch.log(prior / (1 - prior)))

    def validation_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())

    def epoch_metrics(self, num_classes: int) -> MetricCollection:
        return MetricCollection({
            "ap": MultilabelAveragePrecision(num_labels=num_classes, average=None),
            "stats": MultilabelStatScores(num_labels=num_classes, average=None, threshold=0.5),
            "exact": MultilabelExactMatch(num_labels=num_classes, threshold=0.5),
        }, compute_groups=False)

    def epoch_values(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        stats = computed["stats"]  # (concepts, [tp, fp, tn, fn, support])
        with_positives = stats[:, 4] > 0
        ap = computed["ap"].float()
        val_map = ap[with_positives].mean() if bool(with_positives.any()) else torch.tensor(0.0)
        right = (stats[:, 0] + stats[:, 2]).sum()
        decisions = stats[:, :4].sum()
        return {
            "val_map": val_map,
            "val_accuracy": right.float() / decisions.clamp_min(1).float(),
            "val_exact_match": computed["exact"].float(),
        }

    def fit_postprocessing(self, classes: list[str], probabilities: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        from visiontrain.evaluation.tagging import check_multilabel, fit_thresholds

        probs, truth = check_multilabel(probabilities, targets, len(classes))
        return {"thresholds": dict(zip(classes, fit_thresholds(probs, truth)))}

    def report(self, classes: list[str], targets: torch.Tensor, probabilities: torch.Tensor, paths: list[str],
               state: dict[str, Any]) -> dict[str, Any]:
        from visiontrain.evaluation.tagging import build_tagging_report

        return build_tagging_report(classes, targets, probabilities, paths, thresholds=state.get("thresholds"))

    def write_pictures(self, report: dict[str, Any], out_dir: Path) -> None:
        from visiontrain.evaluation.report import save_figure
        from visiontrain.evaluation.tagging import PR_CURVES_FILE, pr_curves_figure

        save_figure(pr_curves_figure(report), Path(out_dir) / PR_CURVES_FILE)

    def headline(self, report: dict[str, Any]) -> dict[str, Any]:
        return {k: report[k] for k in ("map", "loss", "accuracy", "macro") if k in report}

    def predictions(self, row: Any, classes: list[str], state: dict[str, Any], top_k: int) -> list[dict[str, Any]]:
        thresholds = state.get("thresholds", {})
        order = np.argsort(-row, kind="stable")
        result = []
        for c in order:
            threshold = float(thresholds.get(classes[c], 0.5))
            result.append({"label": classes[c], "probability": float(row[c]), "on": bool(row[c] >= threshold), "threshold": threshold})
        return result


def positive_weights(train_targets: torch.Tensor) -> torch.Tensor:
    """negatives / positives per concept, between 1 and MAX_POSITIVE_WEIGHT (common concepts keep 1)."""
    positives = train_targets.sum(dim=0)
    negatives = train_targets.shape[0] - positives
    return (negatives / positives.clamp_min(1)).clamp(1.0, MAX_POSITIVE_WEIGHT)


def _positives(classes: list[str], samples: list[Sample]) -> dict[str, int]:
    counts = {c: 0 for c in classes}
    for sample in samples:
        for label in sample.labels:
            counts[label] += 1
    return counts
