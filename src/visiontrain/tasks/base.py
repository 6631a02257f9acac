"""The task protocol and its registry: what differs between classification, tagging and detection.

A task owns the meaning of a run: what a sample's labels become as training targets, the loss, the
validation metrics and the one the best checkpoint is chosen by, the output activation, what is fitted
on the validation set after training (tagging: per-concept thresholds), the split rule, the evaluation
report and its pictures, and the shape of a prediction. The trainer, callbacks, feature cache, events,
run directory, checkpoint, worker, API and pages are shared and ask the task instead of assuming one.
A new task is a new module in this package registered with :func:`register_task`.

Two kinds of model: :class:`HeadTask` (classification, tagging) trains a new head on the frozen
backbone's pooled features, so its tasks speak in logits and target rows; detection
(``detection.py``) trains a Faster R-CNN whose heads read the backbone's feature maps, and speaks in
boxes. ``Task.model`` says which (``"head"`` or ``"detector"``); the runner, predictor, evaluation
and export follow it, and everything else is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torchmetrics import MetricCollection

from visiontrain.data.dataset import Sample
from visiontrain.settings import TrainingSettings


class Task(ABC):
    """One kind of view. Instances hold no state: the same object serves every run."""

    name: ClassVar[str]
    # "head": a new head on pooled backbone features (HeadTask); "detector": Faster R-CNN on feature maps.
    model: ClassVar[str] = "head"
    # The validation metric the best checkpoint and early stopping follow, and whether higher is better.
    monitor: ClassVar[str]
    monitor_mode: ClassVar[str] = "max"
    # Fewest classes (concepts) a model of this task can have.
    min_classes: ClassVar[int]
    # Files the evaluation report writes beside evaluation.json (stored as artifacts by the platform).
    pictures: ClassVar[tuple[str, ...]]

    # --- data

    @abstractmethod
    def check_samples(self, classes: list[str], samples: list[Sample], where: str) -> None:
        """Raise DataError when a sample's labels cannot be this task's (e.g. two classes on one image)."""

    @abstractmethod
    def split(self, samples: list[Sample], fraction: float, seed: int, classes: list[str]) -> tuple[list[Sample], list[Sample], list[str]]:
        """(train, val, warnings): the seeded validation split this task needs."""

    @abstractmethod
    def check_split(self, classes: list[str], train: list[Sample], val: list[Sample]) -> list[str]:
        """Raise DataError when training cannot start on this split; return warnings for the user."""

    @abstractmethod
    def write_pictures(self, report: dict[str, Any], out_dir: Path) -> None:
        """The report's pictures (``pictures``) into ``out_dir``."""

    @abstractmethod
    def headline(self, report: dict[str, Any]) -> dict[str, Any]:
        """The few numbers of a report a summary repeats (``summary.json``'s ``evaluation``)."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "monitor": self.monitor}


class HeadTask(Task):
    """A task whose model is the frozen backbone's pooled features → a new head → logits."""

    # Output activation of the exported model and the predictor: "softmax" or "sigmoid".
    activation: ClassVar[str]

    @abstractmethod
    def targets(self, samples: list[Sample], classes: list[str]) -> torch.Tensor:
        """Training targets, one row per sample, in sample order."""

    # --- learning

    @abstractmethod
    def training_loss(self, settings: TrainingSettings, train_targets: torch.Tensor) -> nn.Module:
        """The loss minimised in training (it may depend on the training targets: class weights)."""

    def initialize_head(self, head: nn.Module, train_targets: torch.Tensor) -> None:
        """A chance to set the new head's starting point from the training targets (default: as built)."""

    @abstractmethod
    def validation_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss over a batch, unweighted, so that runs with other settings compare."""

    @abstractmethod
    def epoch_metrics(self, num_classes: int) -> MetricCollection:
        """torchmetrics collection updated with (probabilities, targets) each validation batch
        (correct across devices: torchmetrics syncs its states)."""

    @abstractmethod
    def epoch_values(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The collection's output as the named validation metrics (``val_...``), monitor included."""

    # --- outputs

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return output_activation(self.activation)(logits.float())

    def fit_postprocessing(self, classes: list[str], probabilities: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        """State fitted on the validation predictions of the best model, stored in the checkpoint
        (tagging: a decision threshold per concept). JSON-ready."""
        return {}

    @abstractmethod
    def report(self, classes: list[str], targets: torch.Tensor, probabilities: torch.Tensor, paths: list[str],
               state: dict[str, Any]) -> dict[str, Any]:
        """The evaluation report (``evaluation.json``); its ``task`` field names this task."""

    @abstractmethod
    def predictions(self, row: Any, classes: list[str], state: dict[str, Any], top_k: int) -> list[dict[str, Any]]:
        """One image's probabilities (a numpy row) as its prediction list."""

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "activation": self.activation}


class OutputActivation(nn.Module):
    """Logits to probabilities, as the exported model and the predictor apply it."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(f"unknown output activation {kind!r}")
        self.kind = kind

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1) if self.kind == "softmax" else torch.sigmoid(logits)


def output_activation(kind: str) -> OutputActivation:
    return OutputActivation(kind)


_REGISTRY: dict[str, Task] = {}


def register_task(task_class: type[Task]) -> type[Task]:
    _REGISTRY[task_class.name] = task_class()
    return task_class


def get_task(name: str) -> Task:
    """The registered task called ``name``; the error lists the tasks there are."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(task_names())}") from None


def task_names() -> list[str]:
    return list(_REGISTRY)
