"""The Lightning module: *what* a training step is. The Trainer (see ``trainer.py``) says *how*.

One module serves both stages. In the head stage its inputs are cached backbone features and only
the head learns; in the fine-tuning stage its inputs are images and the last backbone blocks learn
too. Classification is the task here: cross-entropy loss, accuracy; tagging and detection will
bring their own head, loss and metrics through the same trainer.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from visiontrain.models.classifier import TransferNet
from visiontrain.settings import TrainingSettings
from visiontrain.training.optim import build_optimizer, build_schedule, warmup_factor


class TransferModule(L.LightningModule):
    def __init__(self, network: TransferNet, settings: TrainingSettings, *, stage: str, learning_rate: float):
        super().__init__()
        if stage not in ("head", "fine_tune"):
            raise ValueError(f"unknown stage {stage!r}")
        self.network = network
        self.settings = settings
        self.stage = stage
        self.learning_rate = learning_rate
        self.trainable: list[nn.Module] = [network.head]
        if stage == "fine_tune":
            self.trainable += network.unfreeze_last(settings.retrained_layers)
        else:
            network.freeze_backbone()
        self._train_losses: list[torch.Tensor] = []
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    # --- forward

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.stage == "head":
            return self.network.head(inputs)
        return self.network(inputs)

    def on_train_epoch_start(self) -> None:
        # Frozen layers (BatchNorm statistics included) stay in inference mode; with the small
        # batches typical here, updating BatchNorm statistics while fine-tuning hurts more than it helps.
        self.network.backbone.eval()
        self.network.head.train()
        self._train_losses.clear()

    # --- steps

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        inputs, labels = batch
        loss = F.cross_entropy(self(inputs), labels)
        self._train_losses.append(loss.detach())
        return loss

    def on_train_batch_start(self, batch: Any, batch_index: int) -> None:
        if self.settings.warmup and self.current_epoch == 0:
            factor = warmup_factor(batch_index, int(self.trainer.num_training_batches))
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = self.learning_rate * factor

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        inputs, labels = batch
        self._val_outputs.append((self(inputs).float(), labels))

    def on_validation_epoch_start(self) -> None:
        self._val_outputs.clear()

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        logits = torch.cat([o[0] for o in self._val_outputs])
        labels = torch.cat([o[1] for o in self._val_outputs])
        val_loss = F.cross_entropy(logits, labels)
        val_accuracy = (logits.argmax(dim=1) == labels).float().mean()
        # sync_dist: with several devices each sees a shard of the validation set.
        self.log("val_loss", val_loss, sync_dist=True)
        self.log("val_accuracy", val_accuracy, sync_dist=True)
        if self._train_losses:
            self.log("train_loss", torch.stack(self._train_losses).mean(), sync_dist=True)

    # --- optimisation

    def configure_optimizers(self) -> Any:
        params = [p for module in self.trainable for p in module.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, self.learning_rate, self.settings)
        schedule = build_schedule(optimizer, self.settings)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}
