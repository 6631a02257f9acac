"""The evaluation report (``evaluation.json``) and its confusion-matrix picture (``confusion_matrix.png``).

Built from probabilities alone, so the training runner can report on the validation predictions it
already has, and ``evaluate_model`` on a fresh pass over any dataset. Schema::

    {"task": "classification" (added by the task), "accuracy", "loss" (mean cross-entropy), "num_images", "classes",
     "per_class": [{"class", "precision", "recall", "f1", "support"}],
     "macro": {"precision", "recall", "f1"}  (mean over classes seen in labels or predictions),
     "confusion_matrix": [[...]]  (rows = true class, columns = predicted class),
     "misclassified": [{"path", "true", "predicted", "probability", "probabilities": {class: p}}]
                      (most confident mistakes first),
     "predictions": [{"path", "true", "predicted", "probability"}]
                    (every image, in input order; "probability" is the predicted class's, so that any
                    cell of the confusion matrix, right answers included, can list its images)}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visiontrain.evaluation.metrics import DIGITS, as_label_tensor, as_probability_tensor, classification_metrics

REPORT_FILE = "evaluation.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"


def build_report(
    classes: list[str],
    y_true: list[int] | np.ndarray | torch.Tensor,
    probabilities: np.ndarray | torch.Tensor,
    paths: list[str],
) -> dict[str, Any]:
    """The evaluation report for N images: ``y_true`` (N,) class indices into ``classes``,
    ``probabilities`` (N, C) softmax outputs in the same order, ``paths`` the N image paths."""
    classes = [str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be at least two distinct names; got {classes}")
    probs = as_probability_tensor(probabilities, len(classes))
    labels = as_label_tensor(y_true, probs.shape[0], len(classes))
    if len(paths) != probs.shape[0]:
        raise ValueError(f"paths has {len(paths)} entries for {probs.shape[0]} probability rows")
    metrics = classification_metrics(labels, probs)
    return {
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "num_images": int(probs.shape[0]),
        "classes": classes,
        "per_class": [
            {
                "class": name,
                "precision": metrics["precision"][i],
                "recall": metrics["recall"][i],
                "f1": metrics["f1"][i],
                "support": metrics["support"][i],
            }
            for i, name in enumerate(classes)
        ],
        "macro": metrics["macro"],
        "confusion_matrix": metrics["confusion_matrix"],
        "misclassified": _misclassified(classes, labels, probs, [str(p) for p in paths]),
        "predictions": _predictions(classes, labels, probs, [str(p) for p in paths]),
    }


def _misclassified(classes: list[str], labels: torch.Tensor, probs: torch.Tensor, paths: list[str]) -> list[dict[str, Any]]:
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: -float(confidence[i]))
    return [
        {
            "path": paths[i],
            "true": classes[int(labels[i])],
            "predicted": classes[int(predicted[i])],
            "probability": round(float(confidence[i]), DIGITS),
            "probabilities": {name: round(float(p), DIGITS) for name, p in zip(classes, probs[i].tolist())},
        }
        for i in wrong
    ]


def _predictions(classes: list[str], labels: torch.Tensor, probs: torch.Tensor, paths: list[str]) -> list[dict[str, Any]]:
    confidence, predicted = probs.max(dim=1)
    return [
        {"path": path, "true": classes[truth], "predicted": classes[guess], "probability": round(p, DIGITS)}
        for path, truth, guess, p in zip(paths, labels.tolist(), predicted.tolist(), confidence.tolist())
    ]


def write_report(report: dict[str, Any], out_dir: str | Path) -> None:
    """Write ``evaluation.json`` and the report task's pictures (classification: ``confusion_matrix.png``)
    into ``out_dir`` (created if missing)."""
    from visiontrain.tasks import get_task

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomically(out / REPORT_FILE, json.dumps(report, indent=2).encode("utf-8"))
    get_task(report.get("task", "classification")).write_pictures(report, out)


def write_confusion_matrix(report: dict[str, Any], out_dir: Path) -> None:
    save_figure(confusion_matrix_figure(report["confusion_matrix"], report["classes"]), Path(out_dir) / CONFUSION_MATRIX_FILE)


def pr_panel_axes(axes: Any) -> None:
    """One small precision-recall panel's frame (tagging's per-concept curves, detection's per-class ones)."""
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.05)
    axes.tick_params(labelsize=7)
    axes.set_xlabel("recall", fontsize=7)
    axes.set_ylabel("precision", fontsize=7)
    axes.grid(alpha=0.3)


def save_figure(figure: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    figure.savefig(tmp, format="png")
    tmp.replace(path)


def _write_atomically(path: Path, data: bytes) -> None:
    # Readers (the web UI polls run directories) must never see half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def confusion_matrix_figure(matrix: list[list[int]], classes: list[str]):
    """A matplotlib Figure: counts in the cells, colour = share of the true class's row (so rare and
    common classes read alike). Sized for 2 to ~50 classes; no pyplot, so it is safe in a server thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=np.int64)
    n = len(classes)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=float), where=row_totals > 0)

    side = float(np.clip(2.5 + 0.42 * n, 4.5, 24.0))
    font = float(np.clip(13 - 0.12 * n, 7, 11))
    figure = Figure(figsize=(side + 1.2, side), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02)
    colorbar.set_label("share of the true class")

    labels = [_short(name) for name in classes]
    axes.set_xticks(range(n), labels, rotation=45 if n <= 12 else 90, ha="right" if n <= 12 else "center",
                    rotation_mode="anchor" if n <= 12 else "default", fontsize=font)
    axes.set_yticks(range(n), labels, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix ({int(counts.sum())} images)")

    # Every count when the grid is small; beyond that only non-zero cells, or the picture drowns in zeros.
    for (row, col), count in np.ndenumerate(counts):
        if count or n <= 12:
            colour = "white" if shares[row, col] > 0.55 else "black"
            axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=font)
    return figure


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
