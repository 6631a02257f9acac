"""The Lightning module: *what* a training step is. The Trainer (see ``trainer.py``) says *how*.

One module serves both stages. In the head stage its inputs are cached backbone features and only
the head learns; in the fine-tuning stage the last backbone blocks (the *tail*) learn too, and its
inputs are what the frozen *front* of the backbone made of each image (``training/fine_tune.py``:
computed once, or each step from freshly augmented images). The task (``visiontrain.tasks``) says what the loss and the validation metrics are; the
metrics are torchmetrics collections, so they are right across devices.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from visiontrain.models.classifier import TransferNet
from visiontrain.settings import TrainingSettings
from visiontrain.tasks import Task
from visiontrain.training.optim import build_optimizer, build_schedule, fine_tune_schedule, warmup_factor


# Steps in a row whose loss is not a finite number before a run is stopped (one such batch is
# skipped: a rare bad batch should not end a run, a diverging rate should).
MAX_NONFINITE_STEPS = 3


class StageModule(L.LightningModule):
    """What every task's training stage shares: the rate's warm-up, the optimizer and schedule over
    ``self.trainable``, the epoch's mean training loss, and a guard against a non-finite loss.

    A batch whose loss is NaN or infinite is skipped (no update); ``MAX_NONFINITE_STEPS`` in a row
    stop the stage, and ``diverged`` says why, for the run's summary (never training on NaN).
    """

    def __init__(self, settings: TrainingSettings, *, task: Task, stage: str, learning_rate: float):
        super().__init__()
        if stage not in ("head", "fine_tune"):
            raise ValueError(f"unknown stage {stage!r}")
        self.settings = settings
        self.task = task
        self.stage = stage
        self.learning_rate = learning_rate
        self.trainable: list[nn.Module] = []
        self._train_losses: list[torch.Tensor] = []
        self._nonfinite_in_a_row = 0
        self.skipped_steps = 0
        self.finite_steps = 0
        self.diverged: str | None = None

    def guarded(self, loss: torch.Tensor) -> torch.Tensor | None:
        """``loss`` to step on, or None (skip this batch) when it is not finite (on any rank)."""
        finite = bool(torch.isfinite(loss.detach()))
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            # Ranks skip together: one that skipped its backward while another did not would hang DDP's gradient exchange.
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            self._nonfinite_in_a_row = 0
            self.finite_steps += 1
            self._train_losses.append(loss.detach())
            return loss
        self._nonfinite_in_a_row += 1
        self.skipped_steps += 1
        if self._nonfinite_in_a_row >= MAX_NONFINITE_STEPS:
            self.diverged = (
                f"the training loss became {float(loss.detach())} for {self._nonfinite_in_a_row} steps in a row in the "
                f"{self.stage.replace('_', '-')} stage (epoch {self.current_epoch + 1}), so training stopped: lower "
                f"learning_rate (now {self.learning_rate:g}) or set gradient_clip_norm (now {self.settings.gradient_clip_norm:g})"
            )
            self.trainer.should_stop = True
        return None

    def on_train_epoch_start(self) -> None:
        self._train_losses.clear()

    def on_train_batch_start(self, batch: Any, batch_index: int) -> None:
        # Fine-tuning warms up inside its own per-step schedule.
        if self.settings.warmup and self.current_epoch == 0 and self.stage == "head":
            factor = warmup_factor(batch_index, int(self.trainer.num_training_batches))
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = self.learning_rate * factor

    def log_train_loss(self) -> None:
        if self._train_losses:
            self.log("train_loss", torch.stack(self._train_losses).mean(), sync_dist=True)

    def configure_optimizers(self) -> Any:
        params = [p for module in self.trainable for p in module.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, self.learning_rate, self.settings)
        if self.stage == "fine_tune":
            return {"optimizer": optimizer, "lr_scheduler": fine_tune_schedule(optimizer, int(self.trainer.estimated_stepping_batches))}
        schedule = build_schedule(optimizer, self.settings, self.task.monitor, self.task.monitor_mode)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class TransferModule(StageModule):
    """``tail``: fine-tuning's trainable end of the backbone (``TransferNet.split_backbone``); its
    inputs are the frozen front's outputs, except in training when ``front`` is given (fresh
    augmentation: the inputs are images and the front runs each step, in inference mode). Without a
    tail, fine-tuning runs the whole network on images."""

    def __init__(self, network: TransferNet, settings: TrainingSettings, *, task: Task, loss: nn.Module, num_classes: int,
                 stage: str, learning_rate: float, tail: nn.Module | None = None, front: nn.Module | None = None):
        super().__init__(settings, task=task, stage=stage, learning_rate=learning_rate)
        self.network = network
        self.loss = loss
        self.val_metrics = task.epoch_metrics(num_classes)
        self.val_loss = MeanMetric()
        self.trainable = [network.head]
        if stage == "fine_tune":
            self.trainable += network.unfreeze_last(settings.retrained_layers)
        else:
            network.freeze_backbone()
        # A tuple, not attributes: they are parts of ``network`` and must not be registered (and saved) twice.
        self._parts = (front, tail)

    # --- forward

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.stage == "head":
            return self.network.head(inputs)
        tail = self._parts[1]
        if tail is None:
            return self.network(inputs)
        return self.network.head(tail(inputs))

    def on_train_epoch_start(self) -> None:
        # Frozen layers stay in inference mode. The retrained blocks' batch norm re-estimates its
        # statistics only when the settings say so (its scale and shift learn either way).
        self.network.backbone.eval()
        self.network.head.train()
        if self.stage == "fine_tune" and self.settings.fine_tune_batch_norm == "train":
            for block in self.trainable[1:]:
                for layer in block.modules():
                    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                        layer.train()
        super().on_train_epoch_start()

    # --- steps

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor | None:
        inputs, targets = batch
        front = self._parts[0]
        if front is not None:
            with torch.no_grad():
                inputs = front(inputs.contiguous(memory_format=torch.channels_last))
        return self.guarded(self.loss(self(inputs).float(), targets))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        inputs, targets = batch
        logits = self(inputs).float()
        self.val_loss.update(self.task.validation_loss(logits, targets), weight=targets.shape[0])
        # torchmetrics wants integer targets; tagging keeps 0/1 floats for the loss.
        self.val_metrics.update(self.task.probabilities(logits), targets.long())

    def on_validation_epoch_end(self) -> None:
        values = {"val_loss": self.val_loss.compute(), **self.task.epoch_values(self.val_metrics.compute())}
        self.val_loss.reset()
        self.val_metrics.reset()
        for name, value in values.items():
            self.log(name, value)  # already reduced over devices by torchmetrics
        self.log_train_loss()
