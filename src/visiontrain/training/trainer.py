"""The Lightning Trainer set-up: devices, precision, best checkpoint, early stopping, progress.

Lightning owns the mechanics (data-parallel training with a per-device batch size, mixed precision,
checkpoint selection, early stopping), so none of it is hand-written here. A data-parallel run's
processes are started by the run (``training/distributed.py``); the Trainer joins them through
Lightning's ``DDPStrategy``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from visiontrain.settings import TrainingSettings

if TYPE_CHECKING:
    from visiontrain.training.distributed import Ranks


def resolve_device(settings: TrainingSettings, task: str | None = None) -> torch.device:
    """The device for work done outside the Trainer (feature extraction, evaluation).

    Settings this machine cannot run (no GPU for ``accelerator: gpu``, more ``devices`` than exist,
    hub weights offline) raise SettingsError here, the same check the server makes at creation.
    """
    from visiontrain.settings_check import check_runnable_here

    check_runnable_here(settings, task)
    if settings.accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def devices_and_strategy(ranks: Ranks | None, *, sync_buffers: bool = False) -> tuple[int, Any]:
    """How many devices the Trainer uses, and its strategy.

    One device unless the run started ranks (``devices`` 2 or more; ``auto`` is one: Lightning's own
    ``auto`` would take every GPU and pick DDP's subprocess launcher, which re-runs this process's
    command line, so a worker would start copies of itself that claim jobs and the CLI would redo
    its data preparation in every rank). With ranks, Lightning's DDP over the processes the run
    started itself (``distributed.start_ranks``: spawned, running only the stages), never launched
    by Lightning.
    """
    if ranks is None or not ranks.distributed:
        return 1, "auto"
    return ranks.world, ranks.strategy(sync_buffers=sync_buffers)


def _precision(settings: TrainingSettings, device: torch.device) -> str:
    if device.type != "cuda" or not settings.mixed_precision:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def quiet_lightning() -> None:
    """Lightning's start-up chatter (GPU/TPU availability, tips) is noise in our CLI and worker logs."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # A batch whose loss is not finite is skipped on purpose (training/module.py: StageModule.guarded).
    warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")
    # The frozen backbone is in eval mode on purpose (see TransferModule.on_train_epoch_start).
    # Over several ranks, validation metrics are torchmetrics values already reduced over the ranks.
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")


def build_trainer(
    settings: TrainingSettings,
    *,
    max_epochs: int,
    checkpoint_dir: Path,
    checkpoint_name: str,
    monitor: str,
    monitor_mode: str,
    callbacks: list[L.Callback],
    device: torch.device,
    progress: bool,
    ranks: Ranks | None = None,
    sync_buffers: bool = False,
) -> tuple[L.Trainer, ModelCheckpoint]:
    """``ranks``: the run's data-parallel processes (None: one process, as sweeps and the range test
    train); ``sync_buffers``: batch-norm statistics that train are kept equal over the ranks."""
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename=checkpoint_name,
        monitor=monitor,
        mode=monitor_mode,
        save_top_k=1,
        save_weights_only=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    all_callbacks: list[L.Callback] = [checkpoint, *callbacks]
    if settings.early_stopping:
        all_callbacks.append(
            EarlyStopping(monitor=monitor, mode=monitor_mode, patience=settings.patience, min_delta=settings.min_delta, strict=True)
        )
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        all_callbacks.append(RichProgressBar(leave=False))
    on_gpu = device.type == "cuda"
    devices, strategy = devices_and_strategy(ranks, sync_buffers=sync_buffers)
    trainer = L.Trainer(
        accelerator="gpu" if on_gpu else "cpu",
        devices=devices,
        strategy=strategy,
        use_distributed_sampler=False,  # the ranks' shares are the run's (Ranks.loaders)
        precision=_precision(settings, device),  # type: ignore[arg-type]
        max_epochs=max_epochs,
        callbacks=all_callbacks,
        logger=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=not on_gpu,
        log_every_n_steps=1,
        gradient_clip_val=settings.gradient_clip_norm or None,  # by norm, Lightning's default algorithm
        default_root_dir=checkpoint_dir,
    )
    return trainer, checkpoint
