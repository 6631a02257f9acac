"""Optimizer and learning-rate schedule registries, built from the settings.

Registries, not if/elif chains: a new optimizer or schedule is one entry here, and the tests
parametrize over every entry. Warm-up is applied per batch by the training module (see
``warmup_factor``); the schedules here step once per epoch, except fine-tuning's
(``fine_tune_schedule``), which warms up and decays per step over its short stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import math
from typing import Any

import torch
from torch.optim import lr_scheduler

from visiontrain.settings import TrainingSettings

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], float, TrainingSettings], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "adam": lambda p, lr, s: torch.optim.Adam(p, lr=lr, weight_decay=s.weight_decay),
    "sgd": lambda p, lr, s: torch.optim.SGD(p, lr=lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=s.momentum > 0),
    "rmsprop": lambda p, lr, s: torch.optim.RMSprop(p, lr=lr, momentum=s.momentum, weight_decay=s.weight_decay),
    "adamax": lambda p, lr, s: torch.optim.Adamax(p, lr=lr, weight_decay=s.weight_decay),
    "adagrad": lambda p, lr, s: torch.optim.Adagrad(p, lr=lr, weight_decay=s.weight_decay),
    "adadelta": lambda p, lr, s: torch.optim.Adadelta(p, lr=lr, weight_decay=s.weight_decay),
}

# Each returns the Lightning lr-scheduler config (stepped once per epoch), or None for a constant rate;
# ``monitor`` and ``mode`` are the task's validation metric (on_plateau watches it).
ScheduleFactory = Callable[[torch.optim.Optimizer, TrainingSettings, str, str], dict[str, Any] | None]

SCHEDULES: dict[str, ScheduleFactory] = {
    "none": lambda opt, s, monitor, mode: None,
    "on_plateau": lambda opt, s, monitor, mode: {
        "scheduler": lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=s.schedule_factor, patience=s.schedule_patience),
        "monitor": monitor,
        "interval": "epoch",
        "strict": True,
    },
    "step": lambda opt, s, monitor, mode: {
        "scheduler": lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.schedule_factor),
        "interval": "epoch",
    },
    "exponential": lambda opt, s, monitor, mode: {
        "scheduler": lr_scheduler.ExponentialLR(opt, gamma=s.gamma),
        "interval": "epoch",
    },
}


def build_optimizer(params: Iterable[torch.nn.Parameter], learning_rate: float, settings: TrainingSettings) -> torch.optim.Optimizer:
    return OPTIMIZERS[settings.optimizer](params, learning_rate, settings)


def build_schedule(optimizer: torch.optim.Optimizer, settings: TrainingSettings, monitor: str = "val_accuracy",
                   mode: str = "max") -> dict[str, Any] | None:
    return SCHEDULES[settings.schedule](optimizer, settings, monitor, mode)


def warmup_factor(batch_index: int, batches_per_epoch: int) -> float:
    """Linear warm-up through the first epoch: 1/n, 2/n, ..., 1 for batches 0..n-1."""
    return min(1.0, (batch_index + 1) / max(1, batches_per_epoch))


# Share of the fine-tuning steps spent warming up: long enough for Adam's moment estimates to settle
# on the unfrozen weights, short in a stage of a few epochs.
FINE_TUNE_WARMUP = 0.1
FINE_TUNE_FLOOR = 0.01  # the rate ends at 1% of the fine-tuning rate, not at exactly zero


def fine_tune_factor(step: int, total_steps: int) -> float:
    """Fine-tuning's rate multiplier at ``step``: linear warm-up through the first tenth of the stage,
    then a cosine down to ``FINE_TUNE_FLOOR``. A stage of a few epochs has no room to wait for a
    plateau; a cosine spends most steps near the full rate and ends gently, where the best
    checkpoint usually is."""
    warmup = max(1, round(FINE_TUNE_WARMUP * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return FINE_TUNE_FLOOR + (1 - FINE_TUNE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))


def fine_tune_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> dict[str, Any]:
    return {"scheduler": lr_scheduler.LambdaLR(optimizer, lambda step: fine_tune_factor(step, total_steps)), "interval": "step"}
