"""The checkpoint format: weights plus everything needed to predict from the file alone.

A checkpoint is a dict saved with ``torch.save``:
``format`` (int), ``task`` (the registered task's name: it picks the task when loading),
``task_state`` (what the task fitted after training, e.g. tagging's per-concept thresholds), ``settings`` (TrainingSettings dump), ``classes``
(list of names, index = output), ``preprocessing`` (Preprocessing dict; None for a detector, which
resizes and normalises itself), ``detector`` (a detector's options: backbone, sizes, anchors, NMS;
absent for other tasks), ``state_dict`` (TransferNet or Detector weights), ``epoch``, ``stage`` ("head" or "fine_tune"), ``metrics`` (the validation metrics it was
chosen by). Only tensors and plain Python values are stored, so ``weights_only=True`` loading works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from visiontrain.models.classifier import build_network
from visiontrain.models.preprocessing import Preprocessing
from visiontrain.settings import TrainingSettings

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "best.pt"


class CheckpointError(ValueError):
    """A file that is not a visiontrain checkpoint, or one from an unknown format."""


@dataclass
class LoadedModel:
    network: Any  # TransferNet, or a Detector for detection
    classes: list[str]
    preprocessing: Preprocessing | None
    settings: TrainingSettings
    task: str
    epoch: int
    stage: str
    metrics: dict[str, float]
    task_state: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    *,
    network: torch.nn.Module,
    settings: TrainingSettings,
    classes: list[str],
    preprocessing: Preprocessing | None,
    epoch: int,
    stage: str,
    metrics: dict[str, float],
    task: str = "classification",
    task_state: dict[str, Any] | None = None,
    detector: dict[str, Any] | None = None,
) -> None:
    path = Path(path)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "task": task,
        "task_state": dict(task_state or {}),
        "settings": settings.model_dump(mode="json"),
        "classes": list(classes),
        "preprocessing": preprocessing.to_dict() if preprocessing is not None else None,
        **({"detector": dict(detector)} if detector is not None else {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "epoch": int(epoch),
        "stage": stage,
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written best checkpoint behind


def resolve_checkpoint_path(model: str | Path) -> Path:
    """A run directory or a checkpoint file → the checkpoint file."""
    path = Path(model)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (give a run directory or a {CHECKPOINT_NAME} file)")
    return path


def load_checkpoint(model: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    path = resolve_checkpoint_path(model)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        # torch's own message runs to several lines of advice that does not apply here.
        raise CheckpointError(f"{path} is not a readable checkpoint: the file is damaged or not a visiontrain best.pt") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a visiontrain checkpoint (format {CHECKPOINT_FORMAT})")
    from visiontrain.tasks import get_task

    try:
        task = get_task(str(payload.get("task")))
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc} (made by a newer visiontrain?)") from None
    settings = TrainingSettings(**payload["settings"])
    if task.model == "detector":
        from visiontrain.models.detector import detector_from_options

        if "detector" not in payload:
            raise CheckpointError(f"{path} is a detection checkpoint without its detector options")
        network = detector_from_options(payload["detector"], pretrained=False)
    else:
        network = build_network(settings, len(payload["classes"]), pretrained=False)
    network.load_state_dict(payload["state_dict"])
    network.eval()
    return LoadedModel(
        network=network,
        classes=list(payload["classes"]),
        preprocessing=Preprocessing.from_dict(payload["preprocessing"]) if payload.get("preprocessing") else None,
        settings=settings,
        task=payload["task"],
        epoch=int(payload["epoch"]),
        stage=str(payload["stage"]),
        metrics=dict(payload["metrics"]),
        task_state=dict(payload.get("task_state") or {}),
    )
