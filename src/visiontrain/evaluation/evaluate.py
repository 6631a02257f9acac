"""Evaluating a saved model on a dataset: one pass over the images, then the report and its picture.

Without data it evaluates on the run's own validation set (``val_samples.json``, written by the
training runner). Images that cannot be read are listed in the report's ``rejected`` with the reason,
never silently left out. A detector (``Task.model == "detector"``) is run on the images by
``training.detection.detect``, as at the end of training, and judged on their boxes by its task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from visiontrain.data.dataset import Box, DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.evaluation.report import write_report
from visiontrain.models.checkpoint import load_checkpoint, resolve_checkpoint_path
from visiontrain.tasks import get_task

VAL_SAMPLES_FILE = "val_samples.json"


def evaluate_model(
    model: str | Path,
    data: DatasetSpec | str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate a run directory or checkpoint on ``data`` and write ``evaluation.json`` and the task's
    pictures (``confusion_matrix.png``, ``pr_curves.png``) into ``out_dir`` (default: the run
    directory); returns the report. Tagging uses the thresholds stored in the checkpoint; detection its
    score threshold (and writes ``pr_curves.png``, ``confusion_matrix.png`` and ``detections.png``).

    ``data``: None (the run's validation set), a DatasetSpec, or a dataset path for
    ``load_dataset`` (evaluated on its test part if it has one, else its val part, else all its images).
    """
    from visiontrain.predictor import Predictor

    checkpoint = resolve_checkpoint_path(model)
    run_dir = checkpoint.parent
    loaded = load_checkpoint(checkpoint)
    task = get_task(loaded.task)
    samples, rejected, description = _samples_to_evaluate(run_dir, data, loaded.task)
    unknown = sorted({label for s in samples for label in s.labels} - set(loaded.classes))
    if unknown:
        raise DataError(
            f"{description} has labels the model was not trained on: {', '.join(unknown)} "
            f"(the model knows: {', '.join(loaded.classes)})"
        )

    if task.model == "detector":
        report = _evaluate_detector(loaded, samples, rejected, description, batch_size=batch_size, device=device)
        write_report(report, run_dir if out_dir is None else out_dir)
        return report
    predictor = Predictor.load(loaded, device=device)
    scores = predictor.score([s.path for s in samples], batch_size=batch_size)
    rejected += [{"path": str(samples[i].path), "reason": reason} for i, reason in sorted(scores.errors.items())]
    if not scores.indices:
        raise DataError(f"none of the {len(samples)} images in {description} could be read: {rejected[0]['reason']} ({rejected[0]['path']})")
    evaluated = [samples[i] for i in scores.indices]
    report = task.report(loaded.classes, task.targets(evaluated, loaded.classes), torch.from_numpy(scores.probabilities),
                         [str(s.path) for s in evaluated], loaded.task_state)
    report["data"] = description
    report["rejected"] = rejected
    write_report(report, run_dir if out_dir is None else out_dir)
    return report


def _evaluate_detector(loaded: Any, samples: list[Sample], rejected: list[dict[str, str]], description: str, *,
                       batch_size: int, device: str | None) -> dict[str, Any]:
    """The detection report: the images that can be read (the others in ``rejected``) through ``detect``."""
    from visiontrain.data.checks import inspect_image
    from visiontrain.training.detection import detect

    task = get_task(loaded.task)
    readable = []
    for sample in samples:
        verdict = inspect_image(sample.path)
        if isinstance(verdict, str):
            rejected = rejected + [{"path": str(sample.path), "reason": verdict}]
        else:
            readable.append(sample)
    if not readable:
        raise DataError(f"none of the {len(samples)} images in {description} could be read: {rejected[0]['reason']} ({rejected[0]['path']})")
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    found = detect(loaded.network, readable, batch_size=batch_size, device=chosen)
    report = task.report(loaded.classes, found, task.targets(readable, loaded.classes), [str(s.path) for s in readable],
                         loaded.task_state)
    report["data"] = description
    report["rejected"] = rejected
    return report


def _samples_to_evaluate(run_dir: Path, data: DatasetSpec | str | Path | None, task: str) -> tuple[list[Sample], list[dict[str, str]], str]:
    """The labelled images to evaluate on, the files the importer already rejected, and a description."""
    if data is None:
        return read_validation_samples(run_dir), [], f"the validation set of {run_dir}"
    if isinstance(data, DatasetSpec):
        if data.task != task:
            raise DataError(f"the dataset is a {data.task} dataset but the model is a {task} model: give a {task} dataset")
        spec, description = data, data.source or "the given dataset"
    else:
        from visiontrain.data.sources import load_dataset

        spec = load_dataset(data, task=task, require_train=False)
        description = str(data)
    # A held-out test set is what a dataset keeps for judging a model; else its validation part, else all of it.
    samples = spec.test or (spec.val if spec.val is not None else spec.train)
    if not samples:
        raise DataError(f"{description} has no images to evaluate on")
    get_task(task).check_samples(spec.classes, list(samples), description)
    return list(samples), [{"path": str(r.path), "reason": r.reason} for r in spec.rejected], description


def read_validation_samples(run_dir: str | Path) -> list[Sample]:
    """The run's validation images (``val_samples.json``: a list of {"path", "labels"}, with
    ``label`` for classification and ``boxes`` ([{"concept", "box": [x_min, y_min, x_max, y_max]}]) for
    detection); relative paths are taken relative to the run directory."""
    run_dir = Path(run_dir)
    path = run_dir / VAL_SAMPLES_FILE
    if not path.is_file():
        raise DataError(f"{run_dir} has no {VAL_SAMPLES_FILE} (no record of its validation set): give a dataset to evaluate on")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        samples = [
            Sample(
                path=run_dir / str(row["path"]),
                labels=tuple(str(x) for x in row["labels"]) if "labels" in row else str(row["label"]),
                boxes=tuple(Box(str(b["concept"]), *(float(v) for v in b["box"])) for b in row.get("boxes", ())),
            )
            for row in rows
        ]
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{path} is not a list of {{\"path\", \"labels\"}} records ({type(exc).__name__}: {exc})") from None
    if not samples:
        raise DataError(f"{path} lists no images")
    return samples
