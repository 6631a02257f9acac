"""Small Lightning callbacks, one job each: report events, honour a stop request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L

from visiontrain.training.events import EventSink


class EventReporter(L.Callback):
    """Turns batches and epochs into events (metrics.jsonl, progress, the caller's callback)."""

    def __init__(self, sink: EventSink, stage: str, monitor: str, monitor_mode: str = "max", step_offset: int = 0):
        self.sink = sink
        self.stage = stage
        self.monitor = monitor
        self.better = (lambda new, old: new > old) if monitor_mode == "max" else (lambda new, old: new < old)
        self.step = step_offset
        self.best: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_index: int) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:  # a batch skipped for a non-finite loss (StageModule.guarded): no step was taken
            return
        self.step += 1
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
        if self.monitor not in metrics:
            return
        value = float(metrics[self.monitor])
        is_best = self.best is None or self.better(value, self.best)
        if is_best:
            self.best = value
        # Every validation metric the task logged (val_loss, val_accuracy, val_map, ...), by name, and the
        # training loss's components where the task has them (detection: train_loss_classifier, ...).
        task_metrics = {name: float(v) for name, v in metrics.items() if name.startswith(("val_", "train_loss_"))}
        self.sink.emit(
            "epoch",
            stage=self.stage,
            epoch=trainer.current_epoch + 1,
            train_loss=float(metrics["train_loss"]) if "train_loss" in metrics else None,
            **task_metrics,
            monitor=self.monitor,
            learning_rate=float(trainer.optimizers[0].param_groups[0]["lr"]),
            best=is_best,
        )


class StopOnRequest(L.Callback):
    """Stops cleanly after the current batch when ``should_stop()`` turns true (cancel, Ctrl-C)."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped = False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        requested = self.should_stop()
        if trainer.world_size > 1:
            # Every rank stops after the same batch: a rank that went on would wait forever for the others' gradients.
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            self.stopped = True
            trainer.should_stop = True
