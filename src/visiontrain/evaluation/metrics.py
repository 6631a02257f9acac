"""Classification metrics from true labels and predicted probabilities (torchmetrics does the counting)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

# Rows of softmax output sum to 1 up to float32 rounding; anything further off is not probabilities.
ROW_SUM_TOLERANCE = 1e-3
# log(0) would make one confident mistake an infinite loss; this caps its term at about 27.6.
MIN_PROBABILITY = 1e-12
# Every number in the report is rounded to this many digits: all a reader needs, and a smaller file.
DIGITS = 6


def as_probability_tensor(probabilities: np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, C) float64 tensor on the CPU, checked to be probabilities over ``num_classes`` classes."""
    tensor = torch.as_tensor(np.asarray(probabilities) if not isinstance(probabilities, torch.Tensor) else probabilities)
    tensor = tensor.detach().to("cpu", torch.float64)
    if tensor.ndim != 2 or tensor.shape[1] != num_classes:
        raise ValueError(f"probabilities must have shape (images, {num_classes}); got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError("no images to evaluate (probabilities is empty)")
    if not torch.isfinite(tensor).all() or (tensor < 0).any() or (tensor > 1).any():
        raise ValueError("probabilities must be finite values in [0, 1] (were logits passed? apply softmax first)")
    worst = (tensor.sum(dim=1) - 1).abs().max().item()
    if worst > ROW_SUM_TOLERANCE:
        raise ValueError(f"each row of probabilities must sum to 1 (one is off by {worst:.3g}; apply softmax first)")
    return tensor


def as_label_tensor(y_true: list[int] | np.ndarray | torch.Tensor, num_images: int, num_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(np.asarray(y_true) if not isinstance(y_true, torch.Tensor) else y_true).to("cpu")
    if labels.ndim != 1 or labels.shape[0] != num_images:
        raise ValueError(f"y_true must be {num_images} class indices (one per probability row); got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"y_true must hold integer class indices; got {labels.dtype}")
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"y_true has class indices outside 0..{num_classes - 1}")
    return labels


def classification_metrics(labels: torch.Tensor, probabilities: torch.Tensor) -> dict[str, Any]:
    """Accuracy, mean cross-entropy, per-class and macro precision/recall/F1, confusion matrix.

    ``labels``: (N,) class indices; ``probabilities``: (N, C). Precision of a class never predicted
    is 0 (torchmetrics' zero_division), never NaN, so the report stays valid JSON.
    """
    num_classes = probabilities.shape[1]
    preds = probabilities.float()

    def per_class(metric_cls: type) -> list[float]:
        return [_rounded(v) for v in metric_cls(num_classes=num_classes, average=None)(preds, labels)]

    def macro(metric_cls: type) -> float:
        return _rounded(metric_cls(num_classes=num_classes, average="macro")(preds, labels))

    loss = torch.nn.functional.nll_loss(probabilities.clamp_min(MIN_PROBABILITY).log(), labels)
    return {
        "accuracy": _rounded(MulticlassAccuracy(num_classes=num_classes, average="micro")(preds, labels)),
        "loss": _rounded(loss),
        "precision": per_class(MulticlassPrecision),
        "recall": per_class(MulticlassRecall),
        "f1": per_class(MulticlassF1Score),
        "support": torch.bincount(labels, minlength=num_classes).tolist(),
        "macro": {
            "precision": macro(MulticlassPrecision),
            "recall": macro(MulticlassRecall),
            "f1": macro(MulticlassF1Score),
        },
        "confusion_matrix": MulticlassConfusionMatrix(num_classes=num_classes)(preds, labels).tolist(),
    }


def _rounded(value: torch.Tensor) -> float:
    # torchmetrics divides in float32; six digits drop the noise (0.6000000238 -> 0.6) and keep the meaning.
    return round(float(value), DIGITS)
