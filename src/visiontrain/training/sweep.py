"""Sweeps: many head configurations tried on the same cached backbone features, the best kept as a normal run.

The backbone runs once per image variant, before the first trial: the features of the originals
and of as many augmented copies as the largest ``augmented_copies`` of the search space are read
from (or written to) the feature cache; copy k is the same image whatever the number of copies
(``training.features``), so a trial with fewer copies trains on a subset of the rows. Every trial
then trains a fresh head in memory with the runner's own pieces (``TransferModule``, the Trainer
set-up, its early stopping) and reports the task's validation metric after each epoch to Optuna:
its TPE sampler (seeded) proposes the next configuration and its median pruner stops a trial whose
metric falls below the median of earlier trials at the same epoch.

The search space names fields of :class:`TrainingSettings` and stays inside their bounds
(``check_space``); everything it does not search is the base settings'. The study may live in
memory (the CLI) or in an Optuna RDB storage (the platform: several workers run one study).

Written to the sweep's directory: ``trials.csv`` (one row per trial, ranked by the metric),
``sweep.json`` (the summary), ``best/`` (a normal run directory trained with the best trial's
settings by ``run_training``: its features come from the cache).
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from visiontrain.data.dataset import DatasetSpec
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings
from visiontrain.training.feature_store import FeatureCacheLocation

TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "sweep.json"
BEST_DIR = "best"
_SCRATCH_DIR = ".trials"  # each trial's Lightning checkpoint while it trains (removed after)

# Trials in the pruner's reference before it prunes anything, and epochs every trial runs before it can be pruned.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_EPOCHS = 2


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a field of TrainingSettings and the part of its range the sweep explores."""

    name: str
    kind: str  # "float", "int", "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    tasks: tuple[str, ...] | None = None  # only for these tasks (None: every head task)
    when: Callable[[dict[str, Any]], bool] | None = field(default=None, compare=False)  # asked only when true

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_categorical(self.name, list(self.choices))


# The head configurations a sweep tries. Ranges are the usual ones for a head on pretrained features
# (a rate from 1e-4 to 3e-2, up to one hidden layer, moderate dropout); each lies inside its field's bounds.
SEARCH_SPACE: tuple[Dimension, ...] = (
    Dimension("learning_rate", "float", 1e-4, 3e-2, log=True),
    Dimension("optimizer", "choice", choices=("adam", "adamax", "rmsprop", "sgd")),
    Dimension("head_layers", "int", 0, 1),
    Dimension("head_units", "choice", choices=(128, 256, 512), when=lambda p: p["head_layers"] > 0),
    Dimension("dropout", "float", 0.0, 0.5),
    Dimension("weight_decay", "float", 1e-6, 1e-2, log=True),
    Dimension("augmented_copies", "int", 0, 2),
    Dimension("balance_concepts", "choice", choices=(False, True)),
    Dimension("label_smoothing", "float", 0.0, 0.2, tasks=("classification",)),
)


def space_for(task: str) -> tuple[Dimension, ...]:
    return tuple(d for d in SEARCH_SPACE if d.tasks is None or task in d.tasks)


def max_copies(space: tuple[Dimension, ...] = SEARCH_SPACE) -> int:
    (copies,) = [d for d in space if d.name == "augmented_copies"]
    return int(copies.high)


def check_space(space: tuple[Dimension, ...] = SEARCH_SPACE) -> None:
    """Every dimension names a setting and stays inside its bounds (a choice: values the setting accepts)."""
    fields = TrainingSettings.model_fields
    for dim in space:
        if dim.name not in fields:
            raise ValueError(f"the sweep searches {dim.name!r}, which is not a setting")
        values = list(dim.choices) if dim.kind == "choice" else [dim.low, dim.high]
        for value in values:
            try:
                TrainingSettings(**{dim.name: value})
            except Exception as exc:
                raise ValueError(f"the sweep's {dim.name} value {value!r} is outside what the setting accepts: {exc}") from None
        if dim.kind != "choice" and not (dim.low <= dim.high):  # type: ignore[operator]
            raise ValueError(f"the sweep's {dim.name} range is empty")
        if dim.log and dim.low <= 0:  # type: ignore[operator]
            raise ValueError(f"the sweep's {dim.name} is searched on a log scale and must stay above 0")


def _trial_settings(base: TrainingSettings, params: dict[str, Any]) -> TrainingSettings:
    """The base settings with the trial's values (what the user set stays marked as set, and so do they)."""
    values = {**base.model_dump(), **params}
    settings = TrainingSettings(**values)
    object.__setattr__(settings, "__pydantic_fields_set__", set(base.model_fields_set) | set(params))
    return settings


def make_study(task: str, *, seed: int, storage: Any = None, study_name: str | None = None, load_if_exists: bool = False) -> Any:
    """The Optuna study of a sweep: TPE seeded by ``seed``, the median pruner, the task's direction."""
    import optuna

    from visiontrain.tasks import get_task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    the_task = get_task(task)
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        load_if_exists=load_if_exists,
        direction="maximize" if the_task.monitor_mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS),
    )


class _EpochReport(L.Callback):
    """After each validation, the metric goes to the trial; a trial the pruner gives up is stopped there."""

    def __init__(self, trial: Any, monitor: str, stop: Callable[[], bool]):
        self.trial, self.monitor, self.stop = trial, monitor, stop
        self.epochs: list[dict[str, float]] = []
        self.pruned = False

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            return
        epoch = {"epoch": trainer.current_epoch + 1, self.monitor: float(metrics[self.monitor]),
                 "val_loss": float(metrics["val_loss"]) if "val_loss" in metrics else math.nan}
        self.epochs.append(epoch)
        self.trial.report(epoch[self.monitor], epoch["epoch"])
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.stop():
            trainer.should_stop = True


class Sweep:
    """A sweep's data and features, prepared once; each ``run_trial`` trains one head configuration on them."""

    def __init__(self, settings: TrainingSettings | dict[str, Any] | None, data: DatasetSpec | str | Path, out_dir: str | Path, *,
                 task: str | None = None, validation_data: str | Path | None = None,
                 cache_dir: str | Path | FeatureCacheLocation | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None, should_stop: Callable[[], bool] | None = None):
        from visiontrain.models.backbones import create_backbone
        from visiontrain.models.classifier import TransferNet
        from visiontrain.models.preprocessing import resolve_preprocessing
        from visiontrain.settings_check import check_runnable_here
        from visiontrain.tasks import get_task
        from visiontrain.training.events import EventSink
        from visiontrain.training.runner import _load_spec, _Run, as_settings
        from visiontrain.training.trainer import quiet_lightning, resolve_device

        if isinstance(data, DatasetSpec) and task is not None and task != data.task:
            raise DataError(f"the dataset is a {data.task} dataset, not {task}")
        self.task_name = data.task if isinstance(data, DatasetSpec) else (task or "classification")
        self.task = get_task(self.task_name)
        if self.task.model != "head":
            raise DataError(
                f"sweeps try head settings on cached pooled features; a {self.task_name} model trains a whole detector on "
                f"feature maps, which has no such cache: train it with `visiontrain train --task {self.task_name}` instead"
            )
        self.base = as_settings(settings, self.task_name).with_task_defaults(self.task_name)
        check_runnable_here(self.base, self.task_name)
        self.space = space_for(self.task_name)
        self.data, self.validation_data = data, validation_data
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = FeatureCacheLocation.resolve(cache_dir)
        self.should_stop = should_stop or (lambda: False)
        quiet_lightning()
        started = time.perf_counter()
        # Features for the largest number of copies any trial asks for (copy k is the same for every count).
        # Trials train heads only: no fine-tuning inputs are kept on the way.
        extract = _trial_settings(self.base, {"augmented_copies": max(max_copies(self.space), self.base.augmented_copies),
                                              "fine_tune": False})
        self.copies = extract.augmented_copies
        sink = EventSink(self.out_dir, callback)
        try:
            # The runner's order of steps from its seed on, so that the trials' heads start from the same
            # weights as run_training's would: the best trial, re-run in best/, is the same model.
            L.seed_everything(self.base.seed, workers=True, verbose=False)
            run = _Run(extract, self.task, self.out_dir, sink, self.should_stop, self.cache_dir, False)
            spec = _load_spec(run, data, validation_data)
            train, val, _ = run.prepare_data(spec)
            self.device = resolve_device(self.base, self.task_name)
            self.classes = spec.classes
            # build_network's two steps: the backbone, then the head from the generator's state after it.
            backbone = create_backbone(self.base.backbone, pretrained=self.base.pretrained, weights_path=self.base.weights_path)
            self.head_rng = torch.get_rng_state()
            self.num_features = int(backbone.num_features)
            network = TransferNet(backbone, self._head(self.base))
            preprocessing = resolve_preprocessing(network.backbone, image_size=self.base.image_size, resize_mode=self.base.resize_mode)
            train_set, val_set = run.features(network, preprocessing, train, val, self.device)
        except InterruptedError:
            raise DataError("the sweep was stopped while its features were computed") from None
        finally:
            sink.close()
        self.counts = dict(run.counts)
        self.warnings = list(run.warnings)
        self.train_targets = self.task.targets(train, self.classes)
        self.row_targets = self.train_targets[train_set.sample_index]
        self.train_features = train_set.features
        self.row_copy = torch.arange(len(train_set.sample_index)) % (self.copies + 1)  # 0: original, k: copy k
        self.val_features, self.val_targets = val_set.features, self.task.targets(val, self.classes)
        self.features_seconds = round(time.perf_counter() - started, 3)

    # --- one trial

    def _head(self, settings: TrainingSettings) -> torch.nn.Module:
        from visiontrain.models.heads import build_head

        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.head_rng)
            return build_head(self.num_features, len(self.classes), hidden_layers=settings.head_layers,
                              hidden_units=settings.head_units, dropout=settings.dropout)

    def params(self, trial: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for dim in self.space:
            if dim.when is None or dim.when(params):
                params[dim.name] = dim.suggest(trial)
        return params

    def objective(self, trial: Any) -> float:
        import optuna

        from visiontrain.models.classifier import TransferNet
        from visiontrain.training.module import TransferModule
        from visiontrain.training.trainer import build_trainer

        started = time.perf_counter()
        params = self.params(trial)
        settings = _trial_settings(self.base, params)
        head = self._head(settings)
        self.task.initialize_head(head, self.train_targets)
        L.seed_everything(settings.seed, workers=True, verbose=False)  # as the runner's head stage does
        # The head stage never runs the backbone (its inputs are cached features): an empty one stands in for it.
        network = TransferNet(_NoBackbone(self.num_features), head)
        rows = self.row_copy <= settings.augmented_copies
        loader = DataLoader(TensorDataset(self.train_features[rows], self.row_targets[rows]), batch_size=settings.batch_size,
                            shuffle=True, generator=torch.Generator().manual_seed(settings.seed))
        val_loader = DataLoader(TensorDataset(self.val_features, self.val_targets), batch_size=max(256, settings.batch_size))
        module = TransferModule(network, settings, task=self.task, loss=self.task.training_loss(settings, self.train_targets),
                                num_classes=len(self.classes), stage="head", learning_rate=settings.learning_rate)
        report = _EpochReport(trial, self.task.monitor, self.should_stop)
        scratch = self.out_dir / _SCRATCH_DIR / f"{trial.number}-{id(self)}"
        trainer, _ = build_trainer(settings, max_epochs=settings.epochs, checkpoint_dir=scratch, checkpoint_name="best",
                                   monitor=self.task.monitor, monitor_mode=self.task.monitor_mode, callbacks=[report],
                                   device=self.device, progress=False)
        try:
            trainer.fit(module, loader, val_loader)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if self.should_stop():
            raise DataError(f"stopped on request after {len(report.epochs)} epochs, before the trial finished")
        pick = max if self.task.monitor_mode == "max" else min
        finite = [e for e in report.epochs if math.isfinite(e[self.task.monitor])]
        trial.set_user_attr("epochs", len(report.epochs))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        if module.diverged:
            trial.set_user_attr("note", module.diverged)
        if not finite:
            raise DataError(module.diverged or "no epoch ended with a finite validation metric")
        best = pick(finite, key=lambda e: e[self.task.monitor])
        trial.set_user_attr("value", best[self.task.monitor])
        trial.set_user_attr("val_loss", best["val_loss"])
        trial.set_user_attr("best_epoch", best["epoch"])
        if report.pruned:
            raise optuna.TrialPruned(f"below the median of earlier trials at epoch {len(report.epochs)}")
        return best[self.task.monitor]

    def run_trial(self, study: Any) -> Any:
        """One trial of ``study`` (another process may be running others of it); returns it once finished."""
        ran: list[int] = []

        def objective(trial: Any) -> float:
            ran.append(trial.number)
            return self.objective(trial)

        from visiontrain.training.runner import one_thread  # the runner trains its heads the same way

        with one_thread():
            study.optimize(objective, n_trials=1, catch=(DataError, RuntimeError, ValueError))
        return study.trials[ran[0]] if ran and ran[0] < len(study.trials) else None

    # --- results

    def rows(self, study: Any) -> list[dict[str, Any]]:
        return trial_rows(study, self.task_name)

    def best_settings(self, study: Any) -> TrainingSettings | None:
        return best_settings(self.rows(study), self.base, self.task_name)


class _NoBackbone(torch.nn.Module):
    """The backbone's place in a head-only network: its width, no weights (the features are cached)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("a sweep's trial trains on cached features and never runs the backbone")


def best_settings(ranked: list[dict[str, Any]], base: TrainingSettings, task: str) -> TrainingSettings | None:
    """The base settings with the top trial's values (``ranked``: ``trial_rows``); None when no trial completed."""
    if not ranked or ranked[0]["state"] != "complete":
        return None
    return _trial_settings(base, _searched(ranked[0], space_for(task)))


def _searched(row: dict[str, Any], space: tuple[Dimension, ...]) -> dict[str, Any]:
    return {d.name: row[d.name] for d in space if row.get(d.name) is not None}


_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def trial_rows(study: Any, task: str) -> list[dict[str, Any]]:
    """The study's trials as table rows, ranked: complete ones by the metric (ties: the earlier trial),
    then pruned ones by the best value they reached, then the rest."""
    from visiontrain.tasks import get_task

    the_task = get_task(task)
    monitor, sign = the_task.monitor, (-1 if the_task.monitor_mode == "max" else 1)
    rows = []
    for trial in study.trials:
        attrs = trial.user_attrs
        row: dict[str, Any] = {
            "number": trial.number,
            "state": _STATES.get(trial.state.name, trial.state.name.lower()),
            monitor: attrs.get("value"),
            "val_loss": attrs.get("val_loss"),
            "epochs": attrs.get("epochs"),
            "best_epoch": attrs.get("best_epoch"),
            "seconds": attrs.get("seconds"),
        }
        row.update({d.name: trial.params.get(d.name) for d in space_for(task)})
        if attrs.get("note"):
            row["note"] = attrs["note"]
        rows.append(row)
    order = {"complete": 0, "pruned": 1}

    def key(row: dict[str, Any]) -> tuple:
        value = row[monitor]
        return (order.get(row["state"], 2), sign * value if value is not None else math.inf, row["number"])

    ranked = sorted(rows, key=key)
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    return ranked


def csv_columns(task: str) -> list[str]:
    from visiontrain.tasks import get_task

    return ["rank", "number", "state", get_task(task).monitor, "val_loss", "epochs", "best_epoch", "seconds",
            *(d.name for d in space_for(task))]


def write_trials_csv(rows: list[dict[str, Any]], path: Path, task: str) -> None:
    columns = csv_columns(task)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})


def run_sweep(
    data: DatasetSpec | str | Path,
    out_dir: str | Path,
    *,
    trials: int,
    settings: TrainingSettings | dict[str, Any] | None = None,
    seed: int | None = None,
    task: str | None = None,
    validation_data: str | Path | None = None,
    cache_dir: str | Path | FeatureCacheLocation | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    train_best: bool = True,
) -> dict[str, Any]:
    """Try ``trials`` head configurations on ``data``'s cached features; write trials.csv, sweep.json and best/.

    ``settings``: the base (what the sweep does not search: epochs, backbone, early stopping, ...).
    ``seed``: the sampler's (default: the settings' seed); the same seed gives the same trials on the CPU.
    ``callback``: receives the feature events and one ``{"type": "trial", ...}`` event per finished trial.
    Returns the summary (also ``sweep.json``).
    """
    import json

    from visiontrain.training.runner import run_training

    if not 1 <= trials <= 1000:
        raise DataError(f"trials must be between 1 and 1000 (got {trials})")
    started = time.perf_counter()
    out = Path(out_dir)
    shutil.rmtree(out / BEST_DIR, ignore_errors=True)
    sweep = Sweep(settings, data, out, task=task, validation_data=validation_data, cache_dir=cache_dir, callback=callback,
                  should_stop=should_stop)
    seed = sweep.base.seed if seed is None else seed
    study = make_study(sweep.task_name, seed=seed)
    trials_started = time.perf_counter()
    for _ in range(trials):
        if sweep.should_stop():
            break
        trial = sweep.run_trial(study)
        if callback is not None and trial is not None:
            row = next(r for r in sweep.rows(study) if r["number"] == trial.number)
            callback({"type": "trial", **row})
    trials_seconds = round(time.perf_counter() - trials_started, 3)
    rows = sweep.rows(study)
    write_trials_csv(rows, out / TRIALS_FILE, sweep.task_name)
    shutil.rmtree(out / _SCRATCH_DIR, ignore_errors=True)
    best = sweep.best_settings(study)
    summary: dict[str, Any] = {
        "task": sweep.task_name,
        "monitor": sweep.task.monitor,
        "seed": seed,
        "trials": len(rows),
        "states": {state: sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "failed")},
        "best_trial": rows[0] if rows and rows[0]["state"] == "complete" else None,
        "best_settings": None,
        "searched": [d.name for d in sweep.space],
        "counts": sweep.counts,
        "warnings": sweep.warnings,
        "timings": {"features": sweep.features_seconds, "trials": trials_seconds},
    }
    if best is not None:
        summary["best_settings"] = best.non_default()
        if train_best and not sweep.should_stop():
            best_started = time.perf_counter()
            # The runner trains its head on one thread, as the trials ran, so the same settings give the same head.
            result = run_training(best, data, out / BEST_DIR, task=sweep.task_name if not isinstance(data, DatasetSpec) else None,
                                  validation_data=validation_data, cache_dir=sweep.cache_dir, should_stop=should_stop)
            summary["best_run"] = {"dir": str(out / BEST_DIR), "status": result.get("status"), "headline": result.get("headline"),
                                   "counts": result.get("counts")}
            summary["timings"]["best_run"] = round(time.perf_counter() - best_started, 3)
    summary["timings"]["total"] = round(time.perf_counter() - started, 3)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return summary
