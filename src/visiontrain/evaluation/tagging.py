"""Multi-label tagging metrics, decision thresholds, the tagging report and its precision-recall picture.

torchmetrics does the counting. Two accuracies are reported because platforms mean different things
by "accuracy" for multi-label data, both at threshold 0.5:

* ``per_concept``: the share of all (image, concept) decisions that are right (torchmetrics'
  multilabel accuracy, micro average), the number shown during training as ``val_accuracy``;
* ``exact_match``: the share of images whose whole set of concepts is right.

Average precision ignores thresholds; ``map`` is its mean over the concepts that have at least one
positive image in the evaluated set (a concept with none has no defined AP and is listed apart).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torchmetrics.classification import (
    BinaryPrecisionRecallCurve,
    MultilabelAccuracy,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelPrecisionRecallCurve,
    MultilabelStatScores,
)

from visiontrain.evaluation.metrics import DIGITS, MIN_PROBABILITY
from visiontrain.evaluation.report import pr_panel_axes

PR_CURVES_FILE = "pr_curves.png"
DEFAULT_THRESHOLD = 0.5
# Points of a precision-recall curve kept in the JSON report: plenty for a chart, a bounded file.
MAX_CURVE_POINTS = 200
MAX_PICTURED = 16


def check_multilabel(probabilities: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) float64 probabilities in [0, 1] and (N, C) 0/1 int targets, checked."""
    probs = torch.as_tensor(np.asarray(probabilities) if not isinstance(probabilities, torch.Tensor) else probabilities)
    probs = probs.detach().to("cpu", torch.float64)
    truth = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets).detach().to("cpu")
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"probabilities must have shape (images, {num_classes}); got {tuple(probs.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("no images to evaluate (probabilities is empty)")
    if truth.shape != probs.shape:
        raise ValueError(f"targets must have the shape of probabilities {tuple(probs.shape)}; got {tuple(truth.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError("probabilities must be finite values in [0, 1] (were logits passed? apply sigmoid first)")
    if not ((truth == 0) | (truth == 1)).all():
        raise ValueError("targets must be 0 or 1 for each (image, concept)")
    return probs, truth.long()


def average_precisions(probs: torch.Tensor, truth: torch.Tensor) -> tuple[list[float | None], float]:
    """AP per concept (None where the concept has no positive image) and their mean over the others."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*No positive samples.*")
        per_concept = MultilabelAveragePrecision(num_labels=probs.shape[1], average=None)(probs.float(), truth)
    support = truth.sum(dim=0)
    values = [round(float(ap), DIGITS) if int(n) > 0 else None for ap, n in zip(per_concept, support)]
    present = [v for v in values if v is not None]
    return values, round(float(np.mean(present)), DIGITS) if present else 0.0


def fit_thresholds(probs: torch.Tensor, truth: torch.Tensor) -> list[float]:
    """Per concept, the decision threshold with the best F1 on these predictions.

    The threshold is put halfway between the lowest score still called positive at the best F1 and
    the next lower score, so that new images a hair below a validation score are decided as it was.
    A concept with no positive image keeps 0.5.
    """
    thresholds = []
    for c in range(probs.shape[1]):
        scores, labels = probs[:, c].float(), truth[:, c]
        if int(labels.sum()) == 0:
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        precision, recall, cut = BinaryPrecisionRecallCurve()(scores, labels)
        cut = cut.reshape(-1)  # one image: torchmetrics returns a 0-d tensor
        precision, recall = precision[:-1].double(), recall[:-1].double()  # the last point has no threshold
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(precision))
        best = int(torch.argmax(f1))  # cut is ascending: the first maximum is the lowest such threshold
        chosen = float(cut[best])
        lower = scores[scores < chosen]
        threshold = (chosen + float(lower.max())) / 2 if lower.numel() else chosen / 2
        # Not rounded: near 1.0 two scores can be closer than any rounding, which would move the
        # threshold above the score it was chosen at (and turn the concept off for good).
        thresholds.append(threshold)
    return thresholds


def decide(probs: torch.Tensor, thresholds: list[float]) -> torch.Tensor:
    """(N, C) 0/1 decisions: probability at or above the concept's threshold."""
    return (probs >= torch.tensor(thresholds, dtype=probs.dtype)).long()


def accuracies(probs_or_decisions: torch.Tensor, truth: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    num = truth.shape[1]
    preds = probs_or_decisions.float()
    return {
        "per_concept": round(float(MultilabelAccuracy(num_labels=num, threshold=threshold, average="micro")(preds, truth)), DIGITS),
        "exact_match": round(float(MultilabelExactMatch(num_labels=num, threshold=threshold)(preds, truth)), DIGITS),
    }


def build_tagging_report(classes: list[str], targets: Any, probabilities: Any, paths: list[str],
                         thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """The tagging evaluation report for N images (schema in ``tasks.tagging``)."""
    classes = [str(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names, at least one; got {classes}")
    probs, truth = check_multilabel(probabilities, targets, len(classes))
    if len(paths) != probs.shape[0]:
        raise ValueError(f"paths has {len(paths)} entries for {probs.shape[0]} probability rows")
    chosen = [float((thresholds or {}).get(c, DEFAULT_THRESHOLD)) for c in classes]
    decisions = decide(probs, chosen)
    stats = MultilabelStatScores(num_labels=len(classes), average=None, threshold=0.5)(decisions.float(), truth)
    ap, mean_ap = average_precisions(probs, truth)
    per_concept = []
    for i, name in enumerate(classes):
        tp, fp, _, fn, support = (int(v) for v in stats[i])
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_concept.append({
            "concept": name, "precision": round(precision, DIGITS), "recall": round(recall, DIGITS), "f1": round(f1, DIGITS),
            "ap": ap[i], "support": support, "threshold": chosen[i],
        })
    macro = {k: round(float(np.mean([row[k] for row in per_concept])), DIGITS) for k in ("precision", "recall", "f1")}
    loss = torch.nn.functional.binary_cross_entropy(probs.clamp(MIN_PROBABILITY, 1 - MIN_PROBABILITY), truth.double())
    return {
        "task": "tagging",
        "num_images": int(probs.shape[0]),
        "classes": classes,
        "map": mean_ap,
        "loss": round(float(loss), DIGITS),
        "accuracy": accuracies(probs, truth),
        "accuracy_at_thresholds": accuracies(decisions, truth),
        "thresholds": dict(zip(classes, chosen)),
        "per_concept": per_concept,
        "concepts_without_positives": [c for c, a in zip(classes, ap) if a is None],
        "macro": macro,
        "pr_curves": _pr_curves(classes, probs, truth),
        "errors": _errors(classes, probs, truth, decisions, paths),
        "predictions": [
            {
                "path": str(path),
                "true": [c for c, t in zip(classes, truth[n].tolist()) if t],
                "predicted": [c for c, d in zip(classes, decisions[n].tolist()) if d],
                "probabilities": {c: round(float(p), DIGITS) for c, p in zip(classes, probs[n].tolist())},
            }
            for n, path in enumerate(paths)
        ],
    }


def _pr_curves(classes: list[str], probs: torch.Tensor, truth: torch.Tensor) -> dict[str, dict[str, list[float]]]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*No positive samples.*")
        precision, recall, thresholds = MultilabelPrecisionRecallCurve(num_labels=len(classes))(probs.float(), truth)
    curves = {}
    for i, name in enumerate(classes):
        p, r, t = precision[i].tolist(), recall[i].tolist(), thresholds[i].tolist() + [1.0]
        keep = _thin(len(p))
        curves[name] = {
            "precision": [round(p[k], 4) for k in keep],
            "recall": [round(r[k], 4) for k in keep],
            "thresholds": [round(t[k], 4) for k in keep],
        }
    return curves


def _thin(n: int) -> list[int]:
    if n <= MAX_CURVE_POINTS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (MAX_CURVE_POINTS - 1)) for i in range(MAX_CURVE_POINTS)})


def _errors(classes: list[str], probs: torch.Tensor, truth: torch.Tensor, decisions: torch.Tensor, paths: list[str]) -> dict[str, dict[str, list]]:
    """Per concept: false positives (most confident first) and false negatives (most missed first)."""
    errors = {}
    for i, name in enumerate(classes):
        fp = ((decisions[:, i] == 1) & (truth[:, i] == 0)).nonzero().flatten().tolist()
        fn = ((decisions[:, i] == 0) & (truth[:, i] == 1)).nonzero().flatten().tolist()
        fp.sort(key=lambda n: -float(probs[n, i]))
        fn.sort(key=lambda n: float(probs[n, i]))
        errors[name] = {
            "false_positives": [{"path": str(paths[n]), "probability": round(float(probs[n, i]), DIGITS)} for n in fp],
            "false_negatives": [{"path": str(paths[n]), "probability": round(float(probs[n, i]), DIGITS)} for n in fn],
        }
    return errors


def pr_curves_figure(report: dict[str, Any]):
    """One small precision-recall plot per concept (AP and threshold in its title); no pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    every = report["per_concept"]
    # Past a few dozen small plots the picture is unreadable and slow to draw (3 s for 71): it shows the
    # concepts with the most validation images; evaluation.json and the studio have every curve.
    rows = sorted(every, key=lambda r: (-r["support"], r["concept"]))[:MAX_PICTURED] if len(every) > MAX_PICTURED else every
    n = len(rows)
    cols = min(4, n)
    lines = (n + cols - 1) // cols
    figure = Figure(figsize=(3.2 * cols, 3.0 * lines), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    for k, row in enumerate(rows):
        axes = figure.add_subplot(lines, cols, k + 1)
        curve = report["pr_curves"][row["concept"]]
        axes.plot(curve["recall"], curve["precision"], color="#2563eb", linewidth=1.5)
        # The operating point the predictor uses: this concept's threshold.
        axes.plot([row["recall"]], [row["precision"]], "o", color="#dc2626", markersize=5)
        ap = "n/a" if row["ap"] is None else f"{row['ap']:.3f}"
        name = row["concept"] if len(row["concept"]) <= 22 else row["concept"][:21] + "…"
        axes.set_title(f"{name}\nAP {ap} · threshold {row['threshold']:.2f} · {row['support']} img", fontsize=8)
        pr_panel_axes(axes)
    shown = f"; the {n} of {len(every)} concepts with the most images" if n < len(every) else ""
    figure.suptitle(f"Precision-recall per concept (mAP {report['map']:.3f}, {report['num_images']} images{shown})", fontsize=10)
    return figure
