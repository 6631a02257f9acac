"""Classification: one class per image. Softmax, cross-entropy, validation accuracy, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings
from visiontrain.tasks.base import HeadTask, register_task


@register_task
class Classification(HeadTask):
    name = "classification"
    monitor = "val_accuracy"
    activation = "softmax"
    min_classes = 2
    pictures = ("confusion_matrix.png",)

    def check_samples(self, classes: list[str], samples: list[Sample], where: str) -> None:
        known = set(classes)
        for sample in samples:
            if len(sample.labels) != 1:
                raise DataError(
                    f"{sample.path} in {where} has {len(sample.labels)} labels; a classification image has exactly one "
                    "(train a tagging model for images with several concepts)"
                )
            if sample.labels[0] not in known:
                raise DataError(f"{sample.path} in {where} is labelled {sample.labels[0]!r}, which is not one of the classes {classes}")

    def split(self, samples: list[Sample], fraction: float, seed: int, classes: list[str]) -> tuple[list[Sample], list[Sample], list[str]]:
        from visiontrain.data.split import content_keyed, stratified_split

        keyed, back = content_keyed(samples)  # by content: where the files lie does not move the split
        train, val = stratified_split(keyed, fraction, seed, classes=classes)
        return back(train), back(val), []

    def check_split(self, classes: list[str], train: list[Sample], val: list[Sample]) -> list[str]:
        from visiontrain.data.checks import dataset_warnings, require_training_images

        require_training_images(classes, train)
        missing_val = [c for c in classes if not any(s.label == c for s in val)]
        if missing_val:
            raise DataError(
                f"no validation images for class(es) {', '.join(missing_val)}: add validation images for them, "
                "or leave the validation set to the split"
            )
        return dataset_warnings(classes, train, val)

    def targets(self, samples: list[Sample], classes: list[str]) -> torch.Tensor:
        index = {name: i for i, name in enumerate(classes)}
        return torch.tensor([index[s.label] for s in samples], dtype=torch.long)

    def training_loss(self, settings: TrainingSettings, train_targets: torch.Tensor) -> nn.Module:
        weight = None
        if settings.balance_concepts:
            # Each class's images weigh 1 / its share of the training images (normalised so a balanced
            # set gets weight 1 everywhere): a rare class then counts as much as a common one.
            counts = torch.bincount(train_targets, minlength=int(train_targets.max()) + 1).float()
            weight = torch.where(counts > 0, counts.sum() / (len(counts) * counts.clamp(min=1)), torch.zeros_like(counts))
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=settings.label_smoothing)

    def validation_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets)

    def epoch_metrics(self, num_classes: int) -> MetricCollection:
        return MetricCollection({"accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro")})

    def epoch_values(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"val_accuracy": computed["accuracy"]}

    def report(self, classes: list[str], targets: torch.Tensor, probabilities: torch.Tensor, paths: list[str],
               state: dict[str, Any]) -> dict[str, Any]:
        from visiontrain.evaluation.report import build_report

        return {"task": self.name, **build_report(classes, targets, probabilities, paths)}

    def write_pictures(self, report: dict[str, Any], out_dir: Path) -> None:
        from visiontrain.evaluation.report import write_confusion_matrix

        write_confusion_matrix(report, out_dir)

    def headline(self, report: dict[str, Any]) -> dict[str, Any]:
        return {k: report[k] for k in ("accuracy", "loss", "macro") if k in report}

    def predictions(self, row: Any, classes: list[str], state: dict[str, Any], top_k: int) -> list[dict[str, Any]]:
        best = np.argsort(-row, kind="stable")[: min(top_k, len(classes))]
        return [{"label": classes[c], "probability": float(row[c])} for c in best]
