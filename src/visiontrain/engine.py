"""The engine's public Python API: train, evaluate, predict. The CLI and the platform's worker call these.

The engine knows nothing of HTTP or databases. It takes settings, a dataset description (or a path
to import one from), a run directory, an optional event callback and an optional stop flag, and
returns a summary (the same dict it writes to ``summary.json``).

Run directory (names are stable; the platform and other tools read them):
    settings.yaml        every setting, defaults filled in
    metrics.jsonl        one JSON event per line, as they happen (see ``training.events``)
    summary.json         task, monitor (the metric the best checkpoint follows), status, best_epoch,
                         best_stage, best_metrics {val_loss, the task's val_* metrics, train_loss},
                         headline {name, value}, evaluation (its headline numbers), test (when the data
                         has a test set), task_state, classes, timings {seconds per stage}, counts,
                         rejected files, warnings
    best.pt              the best checkpoint (``models.checkpoint``): enough alone to predict
    evaluation.json      the task's report on the validation set (``tasks``): classification: accuracy,
                         per-class precision/recall/F1/support, confusion matrix, misclassified images,
                         every image's prediction; tagging: mAP, per-concept P/R/F1/AP/threshold, PR
                         curves, false positives and negatives per concept, every image's prediction
    confusion_matrix.png classification's picture; tagging writes pr_curves.png
    train_samples.json, val_samples.json, test_samples.json   the images of each side, with their labels
    test/                evaluation.json (+ picture) of the held-out test set, never used to pick a model
    model.onnx           written by ``export`` (on demand)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from visiontrain.data.dataset import DatasetSpec
from visiontrain.settings import TrainingSettings
from visiontrain.training.feature_store import FeatureCacheLocation

__all__ = ["FeatureCacheLocation", "evaluate", "export_onnx", "predict", "train"]

EventCallback = Callable[[dict[str, Any]], None]
StopFlag = Callable[[], bool]


def train(
    settings: TrainingSettings | dict[str, Any] | None,
    data: DatasetSpec | str | Path,
    run_dir: str | Path,
    *,
    task: str | None = None,
    validation_data: str | Path | None = None,
    callback: EventCallback | None = None,
    should_stop: StopFlag | None = None,
    cache_dir: str | Path | FeatureCacheLocation | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a model by transfer learning; returns the summary (also written to summary.json).

    ``data``: a DatasetSpec (it names its task), or a dataset path read for ``task`` (default
    "classification"; "tagging": a CSV of path,labels or a COCO/YOLO/VOC folder).
    ``validation_data``: an optional separate validation set (directory or CSV).
    ``callback``: receives every event (batch, epoch, stage, features) as a dict.
    ``should_stop``: polled after every batch; when it returns True the run stops cleanly and
    keeps the best checkpoint so far (status "cancelled"). Ctrl-C does the same.
    ``cache_dir``: where backbone features persist across runs: a directory (default: the user cache
    directory, or $VISIONTRAIN_CACHE_DIR), capped at $VISIONTRAIN_FEATURE_CACHE_GB (default 20 GB, least
    recently used evicted); or a ``FeatureCacheLocation.resolve(directory, size_gb=..., shared=blob_store)``
    whose ``shared`` blob store the machines of a cluster share, so each image's features are computed once.
    """
    from visiontrain.training.runner import run_training

    return run_training(
        settings,
        data,
        run_dir,
        task=task,
        validation_data=validation_data,
        callback=callback,
        should_stop=should_stop,
        cache_dir=cache_dir,
        progress=progress,
    )


def evaluate(
    model: str | Path, data: DatasetSpec | str | Path | None = None, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Evaluate a trained model (run directory or checkpoint) on ``data`` (default: its validation set);
    writes ``evaluation.json`` and the task's pictures into ``out_dir`` (default: the run directory) and
    returns the report. A detection model reads ``data`` as a dataset with boxes (any importable layout)."""
    from visiontrain.evaluation.evaluate import evaluate_model

    return evaluate_model(model, data, out_dir)


def predict(
    model: str | Path, images: Iterable[str | Path | bytes], *, top_k: int = 5, backend: str = "torch"
) -> list[dict[str, Any]]:
    """Predictions for each image (classification: the top-k labels with probabilities; tagging:
    every concept with its probability and whether it is on; detection: the boxes at or above the
    model's score threshold, ``{"label", "score", "box": {"x_min", "y_min", "x_max", "y_max"}}`` in the
    image's pixels, with the image's ``width`` and ``height``); ``backend`` is "torch" or "onnx"."""
    from visiontrain.predictor import Predictor

    return Predictor.load(model, backend=backend).predict(list(images), top_k=top_k)


def export_onnx(model: str | Path, out_path: str | Path | None = None) -> Path:
    """Export the best checkpoint to ONNX (checked against PyTorch within 1e-4 in a probability; a
    detector: every box within 1 px and 1e-4 in its score); returns the file."""
    from visiontrain.export import export_onnx as _export

    return _export(model, out_path)
