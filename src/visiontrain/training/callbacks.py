"""Small Lightning callbacks, one job each: report events, honour a stop request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L

from visiontrain.training.events import EventSink


class EventReporter(L.Callback):
    """Turns batches and epochs into events (metrics.jsonl, progress, the caller's callback)."""

    def __init__(self, sink: EventSink, stage: str, step_offset: int = 0):
        self.sink = sink
        self.stage = stage
        self.step = step_offset
        self.best: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_index: int) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.step += 1
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.sink.emit(
            "batch",
            stage=self.stage,
            epoch=trainer.current_epoch + 1,
            step=self.step,
            loss=float(loss),
            learning_rate=float(trainer.optimizers[0].param_groups[0]["lr"]),
        )

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        if "val_accuracy" not in metrics:
            return
        accuracy = float(metrics["val_accuracy"])
        is_best = self.best is None or accuracy > self.best
        if is_best:
            self.best = accuracy
        self.sink.emit(
            "epoch",
            stage=self.stage,
            epoch=trainer.current_epoch + 1,
            train_loss=float(metrics["train_loss"]) if "train_loss" in metrics else None,
            val_loss=float(metrics["val_loss"]),
            val_accuracy=accuracy,
            learning_rate=float(trainer.optimizers[0].param_groups[0]["lr"]),
            best=is_best,
        )


class StopOnRequest(L.Callback):
    """Stops cleanly after the current batch when ``should_stop()`` turns true (cancel, Ctrl-C)."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped = False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.should_stop():
            self.stopped = True
            trainer.should_stop = True
