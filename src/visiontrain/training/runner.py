"""One training run, top to bottom: data → features → head → (fine-tuning) → best checkpoint → evaluation.

The task (``visiontrain.tasks``: classification, tagging) says what the targets, loss, metrics,
split and report are; everything here is shared by every task.

Everything a run produces lands in its run directory (names in ``visiontrain.engine``), and every
step is announced as an event. The run stops cleanly on request (cancel flag or Ctrl-C) after the
current batch, keeping the best checkpoint so far.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from visiontrain.data.dataset import DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.data.images import open_image
from visiontrain.data.transforms import model_input
from visiontrain.models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from visiontrain.models.classifier import TransferNet, build_network
from visiontrain.models.preprocessing import Preprocessing, resolve_preprocessing
from visiontrain.settings import SettingsError, TrainingSettings, load_settings
from visiontrain.training import distributed
from visiontrain.training.callbacks import EventReporter, StopOnRequest
from visiontrain.training.events import EventSink
from visiontrain.training.features import FeatureCache, FeatureCacheLocation, FeatureSet, FeatureSpace, extract_features
from visiontrain.training.fine_tune import FineTuneInputs, KeptFront, front_outputs, keepers, prepare_fine_tuning
from visiontrain.training.module import TransferModule
from visiontrain.tasks import Task, get_task
from visiontrain.training.trainer import build_trainer, quiet_lightning, resolve_device

SUMMARY_FILE = "summary.json"
SETTINGS_FILE = "settings.yaml"
TRAIN_SAMPLES_FILE = "train_samples.json"
VAL_SAMPLES_FILE = "val_samples.json"
TEST_SAMPLES_FILE = "test_samples.json"
TEST_DIR = "test"  # evaluation.json (+ pictures) of the held-out test set, when the data has one
CHECKPOINTS_DIR = "checkpoints"  # Lightning's per-stage best, until best.pt is written


class ImageSamples(Dataset):
    """Images decoded on demand (fine-tuning stage and evaluation of a fine-tuned model)."""

    def __init__(self, samples: list[Sample], targets: torch.Tensor, transform: Callable, draft_size: int):
        self.samples, self.targets, self.transform, self.draft_size = samples, targets, transform, draft_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        return self.transform(open_image(sample.path, draft_size=self.draft_size)), self.targets[index]


def as_settings(settings: TrainingSettings | dict[str, Any] | None, task: str | None = None) -> TrainingSettings:
    """Settings as given, or from a dict of what was set over ``task``'s defaults."""
    if isinstance(settings, TrainingSettings):
        return settings
    return load_settings(overrides=settings or {}, task=task)


@contextmanager
def _stop_signals(flag: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the run after the current batch (a second Ctrl-C interrupts at once).

    A SIGTERM handler already installed (the platform's worker has one) is still called.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_interrupt(signum: int, frame: Any) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        print("\nStopping after the current batch (Ctrl-C again to abort at once)...", flush=True)

    def on_terminate(signum: int, frame: Any) -> None:
        flag.set()
        if callable(previous_term):
            previous_term(signum, frame)

    previous_int = signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


class _Run:
    """State of one run; methods are the steps, in order."""

    def __init__(self, settings: TrainingSettings, task: Task, run_dir: Path, sink: EventSink, should_stop: Callable[[], bool],
                 cache_dir: FeatureCacheLocation, progress: bool):
        self.settings, self.task, self.run_dir, self.sink, self.should_stop = settings, task, run_dir, sink, should_stop
        self.cache_dir, self.progress = cache_dir, progress
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.kept_front: tuple[KeptFront | None, KeptFront | None] = (None, None)
        self.found_rate: dict[str, Any] | None = None  # learning_rate auto: what the range test chose, and why
        self.warnings: list[str] = []
        self.rejected: list = []
        self.stage_epochs: dict[str, list[dict[str, Any]]] = {"head": [], "fine_tune": []}
        self.sink.listeners.append(self._remember_epochs)
        # Data-parallel runs (training/distributed.py): this process's rank, and its share of the front's outputs.
        self.ranks = distributed.Ranks()
        self.shard_front: tuple[KeptFront | None, KeptFront | None] = (None, None)

    def parallel_fields(self) -> dict[str, int]:
        """What a training stage's start event says of a data-parallel run (batch_size is per device)."""
        if not self.ranks.distributed:
            return {}
        size = self.settings.batch_size
        return {"devices": self.ranks.world, "batch_size_per_device": size, "effective_batch_size": self.ranks.world * size}

    def scratch(self) -> Path:
        """Where this rank keeps the fine-tuning inputs that do not fit in memory."""
        name = "fine_tune_inputs" if self.ranks.rank == 0 else f"fine_tune_inputs-rank{self.ranks.rank}"
        return self.run_dir / CHECKPOINTS_DIR / name

    def _remember_epochs(self, event: dict[str, Any]) -> None:
        if event["type"] == "epoch":
            self.stage_epochs[event["stage"]].append(event)

    @contextmanager
    def stage(self, name: str, **fields: Any) -> Iterator[None]:
        self.sink.emit("stage", stage=name, status="started", **fields)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.sink.emit("stage", stage=name, status="finished")

    # --- data

    def prepare_data(self, spec: DatasetSpec) -> tuple[list[Sample], list[Sample], list[Sample]]:
        """(train, val, test) images that decode, checked for the task; the split made if not given."""
        from visiontrain.data.checks import check_images

        task = self.task
        self.warnings += spec.warnings
        if len(spec.classes) < task.min_classes:
            raise DataError(
                f"at least {task.min_classes} {'classes are' if task.min_classes > 1 else 'concept is'} needed to train "
                f"a {task.name} model; found {len(spec.classes)}: {spec.classes}"
            )
        parts: dict[str, list[Sample] | None] = {"train": spec.train, "val": spec.val, "test": spec.test}
        checked: dict[str, list[Sample]] = {}
        rejected = []
        for name, samples in parts.items():
            if samples is None:
                continue
            task.check_samples(spec.classes, samples, f"the {name} set")
            checked[name], bad = check_images(samples)
            rejected += bad
        self.rejected = [*spec.rejected, *rejected]  # the caller's spec is left as it was given
        train, val, test = checked["train"], checked.get("val"), checked.get("test", [])
        if val is None:
            train, val, split_warnings = task.split(train, self.settings.validation_split, self.settings.seed, spec.classes)
            self.warnings += split_warnings
        if not val:
            raise DataError(
                "no validation images are left (all rejected, or every image carries a concept that appears on it alone "
                "and must be learnt): add images, or give a validation set"
            )
        self.warnings += task.check_split(spec.classes, train, val)
        self.counts.update(train_images=len(train), val_images=len(val), rejected=len(self.rejected))
        if test:
            self.counts["test_images"] = len(test)
        for name, samples in ((TRAIN_SAMPLES_FILE, train), (VAL_SAMPLES_FILE, val), (TEST_SAMPLES_FILE, test)):
            if samples or name != TEST_SAMPLES_FILE:
                (self.run_dir / name).write_text(json.dumps([sample_record(s, task) for s in samples]))
        return train, val, test

    # --- stages

    def features(self, network: TransferNet, preprocessing: Preprocessing, train: list[Sample], val: list[Sample],
                 device: torch.device) -> tuple[FeatureSet, FeatureSet]:
        cache = FeatureCache(self.cache_dir, FeatureSpace.of(self.settings, preprocessing))
        done_before, hits_before, started = 0, 0, time.perf_counter()
        copies = len(train) * self.settings.augmented_copies
        total_all = len(train) + copies + len(val)

        def report(done: int, total: int, hits: int) -> None:
            # What is being prepared (originals and augmented copies) and, once some were computed,
            # how long the rest will take at the rate so far (cache hits cost nothing, so they are left out).
            done_all, hits_all = done_before + done, hits_before + hits
            computed, elapsed = done_all - hits_all, time.perf_counter() - started
            left = total_all - done_all
            eta = round(left * elapsed / computed, 1) if computed > 0 and left > 0 else (0.0 if left == 0 else None)
            self.sink.emit("features", done=done_all, total=total_all, cache_hits=hits_all, originals=len(train) + len(val),
                           augmented_copies=copies, train_images=len(train), val_images=len(val),
                           elapsed_s=round(elapsed, 1), eta_s=eta)

        common = dict(settings=self.settings, preprocessing=preprocessing, cache=cache, device=device, should_stop=self.should_stop)
        # When fine-tuning follows, what the backbone's frozen front makes of each image on the way is kept for it.
        self.kept_front = keepers(network, self.settings, train, val, self.scratch())
        # On several ranks each computes and caches its share, then reads every row back (ranks.extract).
        train_set, train_shard = self.ranks.extract(extract_features, network, train, augmented_copies=self.settings.augmented_copies,
                                                    on_progress=report, keep_front=self.kept_front[0], **common)
        done_before, hits_before = len(train_set.sample_index), train_set.hits
        val_set, val_shard = self.ranks.extract(extract_features, network, val, augmented_copies=0, on_progress=report,
                                                keep_front=self.kept_front[1], **common)
        self.shard_front = (train_shard, val_shard)
        self.counts.update(
            train_features=len(train_set.sample_index),
            cache_hits=train_set.hits + val_set.hits,
            cache_misses=train_set.misses + val_set.misses,
        )
        return train_set, val_set

    def find_learning_rate(self, network: TransferNet, train_set: FeatureSet, image_targets: torch.Tensor) -> TrainingSettings:
        """``learning_rate: auto``: the range test on a copy of the fresh head over the cached features
        (``lr_find.json``/``.png`` in the run), and these settings at the rate it suggests (the
        fine-tuning rate capped at a tenth of it, as the rule says)."""
        from visiontrain.training.lr_finder import range_test, write_result

        with self.stage("lr_find"):
            # On several devices a step averages devices x batch_size images: the rate is found for that batch.
            probe = self.settings.model_copy(update={"batch_size": self.ranks.world * self.settings.batch_size})
            result = range_test(probe, self.task, copy.deepcopy(network.head), train_set.features, image_targets,
                                train_set.sample_index)
            write_result({"task": self.task.name, **result}, self.run_dir)
        rate = float(f"{result['suggestion']:.3g}")
        update: dict[str, Any] = {"learning_rate": rate}
        self.found_rate = {"learning_rate": rate, "rule": result["rule"], "reason": result["reason"]}
        explicit = self.settings.fine_tune_learning_rate
        if self.settings.fine_tune and explicit is not None and explicit > rate / 10:
            update["fine_tune_learning_rate"] = float(f"{rate / 10:.3g}")
            self.found_rate["fine_tune_learning_rate"] = update["fine_tune_learning_rate"]
        resolved = TrainingSettings(**{**self.settings.model_dump(), **update})
        object.__setattr__(resolved, "__pydantic_fields_set__", set(self.settings.model_fields_set))
        self.settings = resolved
        self.sink.emit("lr_find", **self.found_rate)
        return resolved

    def fine_tune_inputs(self, network: TransferNet, preprocessing: Preprocessing, train: list[Sample], val: list[Sample],
                         train_targets: torch.Tensor, device: torch.device) -> FineTuneInputs:
        cache = FeatureCache(self.cache_dir, FeatureSpace.of(self.settings, preprocessing))
        started = time.perf_counter()

        def report(done: int, total: int) -> None:
            self.sink.emit("fine_tune_inputs", done=done, total=total, elapsed_s=round(time.perf_counter() - started, 1))

        if self.ranks.distributed:
            self.share_front_outputs(network, preprocessing, device, cache.dir)
        inputs = prepare_fine_tuning(network, train, val, settings=self.settings, preprocessing=preprocessing, device=device,
                                     export_dir=cache.dir, scratch=self.scratch(),
                                     kept=self.kept_front, should_stop=self.should_stop, on_progress=report)
        self.timings["fine_tune_inputs"] = round(time.perf_counter() - started, 3)
        self.counts.update(fine_tune_decoded_images=inputs.decoded, fine_tune_training_inputs=len(inputs.train))
        return inputs

    def share_front_outputs(self, network: TransferNet, preprocessing: Preprocessing, device: torch.device,
                            export_dir: Path) -> None:
        """Several ranks: each completes the front's outputs of its share (rows whose features came from the
        cache were not computed on the way), then the shares are exchanged, so each is computed once."""
        split = network.split_backbone(self.settings.retrained_layers)
        pairs = [(kept, shard, name) for kept, shard, name in zip(self.kept_front, self.shard_front, ("train", "val"))
                 if kept is not None and shard is not None]
        if split is None or not pairs:
            return
        stopped = False
        try:
            for _, shard, _ in pairs:
                front_outputs(split[0], shard, settings=self.settings, preprocessing=preprocessing, device=device,
                              export_dir=export_dir, should_stop=self.should_stop)
        except InterruptedError:
            stopped = True
        if self.ranks.any(stopped):
            raise InterruptedError("stopped while preparing fine-tuning inputs")
        for kept, shard, name in pairs:
            self.ranks.share_front(kept, shard, f"front-{name}")

    def fit(self, module: TransferModule, stage: str, epochs: int, train_loader: DataLoader, val_loader: DataLoader,
            device: torch.device, stop: StopOnRequest, step_offset: int) -> tuple[str | None, EventReporter]:
        task = self.task
        reporter = EventReporter(self.sink, stage, task.monitor, task.monitor_mode, step_offset)
        # Batch-norm statistics that train are kept equal over ranks; frozen ones need no exchange each step.
        sync_buffers = stage == "fine_tune" and self.settings.fine_tune_batch_norm == "train"
        trainer, checkpoint = build_trainer(
            self.settings, max_epochs=epochs, checkpoint_dir=self.run_dir / CHECKPOINTS_DIR / stage, checkpoint_name="best",
            monitor=task.monitor, monitor_mode=task.monitor_mode, callbacks=[reporter, stop], device=device, progress=self.progress,
            ranks=self.ranks, sync_buffers=sync_buffers,
        )
        try:
            trainer.fit(module, train_loader, val_loader)
        except SIGTERMException:
            # Lightning ends fit this way after a SIGTERM (our handler has set the stop flag too):
            # a stop request like any other, so the best checkpoint so far is kept.
            stop.stopped = True
        return (checkpoint.best_model_path or None), reporter

    def best_of(self, stage: str) -> dict[str, Any] | None:
        """The epoch the stage's checkpoint was taken at: the first epoch with the best monitored metric."""
        epochs = self.stage_epochs[stage]
        if not epochs:
            return None
        monitor = self.task.monitor
        pick = max if self.task.monitor_mode == "max" else min
        top = pick(e[monitor] for e in epochs)
        return next(e for e in epochs if e[monitor] == top)

    def kept(self, head_ckpt: str | None, fine_tune_ckpt: str | None) -> tuple[str, str | None]:
        """The stage whose best checkpoint is kept: fine-tuning's only when its best epoch beats the head's."""
        head_best, ft_best = self.best_of("head"), self.best_of("fine_tune")
        if fine_tune_ckpt and ft_best and head_best and self.better(ft_best, head_best):
            return "fine_tune", fine_tune_ckpt
        return "head", head_ckpt

    def better(self, candidate: dict[str, Any], incumbent: dict[str, Any]) -> bool:
        monitor = self.task.monitor
        if self.task.monitor_mode == "max":
            return candidate[monitor] > incumbent[monitor]
        return candidate[monitor] < incumbent[monitor]


def run_training(
    settings: TrainingSettings | dict[str, Any] | None,
    data: DatasetSpec | str | Path,
    run_dir: str | Path,
    *,
    task: str | None = None,
    validation_data: str | Path | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache_dir: str | Path | FeatureCacheLocation | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``task``: for a dataset path, the task to read it for (default classification); a DatasetSpec
    names its own (a different ``task`` is an error)."""
    if isinstance(data, DatasetSpec) and task is not None and task != data.task:
        raise DataError(f"the dataset is a {data.task} dataset, not {task}")
    task_name = data.task if isinstance(data, DatasetSpec) else (task or "classification")
    get_task(task_name)  # an unknown task fails before anything is written
    # What was not set takes the task's own default.
    settings = as_settings(settings, task_name).with_task_defaults(task_name)
    from visiontrain.settings_check import check_runnable_here

    check_runnable_here(settings, task_name)  # a missing GPU or offline hub backbone fails before any data work
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous_run(run_dir)
    (run_dir / SETTINGS_FILE).write_text(settings.to_yaml())
    quiet_lightning()

    interrupted = threading.Event()
    stop_requested = lambda: interrupted.is_set() or bool(should_stop and should_stop())  # noqa: E731
    sink = EventSink(run_dir, callback)
    run = _Run(settings, get_task(task_name), run_dir, sink, stop_requested, FeatureCacheLocation.resolve(cache_dir), progress)
    started = time.perf_counter()
    summary: dict[str, Any] = {"status": "running"}
    try:
        with _stop_signals(interrupted):
            summary = _train(run, data, validation_data)
            summary = {"task": task_name, "monitor": run.task.monitor, **summary}
    except (DataError, SettingsError) as exc:
        summary = {"task": task_name, "status": "failed", "message": str(exc)}
        sink.emit("status", status="failed", message=str(exc))
        raise
    except Exception as exc:
        summary = {"task": task_name, "status": "failed", "message": f"{type(exc).__name__}: {exc}"}
        sink.emit("status", status="failed", message=summary["message"])
        raise
    finally:
        run.timings["total"] = round(time.perf_counter() - started, 3)
        summary.update(timings=run.timings, counts=run.counts, warnings=run.warnings)
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        sink.close()
    return summary


def _clear_previous_run(run_dir: Path) -> None:
    """What an earlier run in this directory left that this one might not overwrite (another task's
    picture, a test report when this data has no test set, intermediates)."""
    from visiontrain.tasks import task_names

    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    shutil.rmtree(run_dir / TEST_DIR, ignore_errors=True)
    shutil.rmtree(run_dir / "body_features", ignore_errors=True)  # training/detection.py's spill, if a run was killed
    for scratch in run_dir.glob("ranks-*"):  # a data-parallel run's exchanges (training/distributed.py), if it was killed
        shutil.rmtree(scratch, ignore_errors=True)
    from visiontrain.training.lr_finder import PICTURE_FILE, RESULT_FILE

    stale = [TEST_SAMPLES_FILE, RESULT_FILE, PICTURE_FILE, *(picture for name in task_names() for picture in get_task(name).pictures)]
    for name in stale:
        (run_dir / name).unlink(missing_ok=True)


def _load_spec(run: _Run, data: DatasetSpec | str | Path, validation_data: str | Path | None) -> DatasetSpec:
    if isinstance(data, DatasetSpec):
        return data
    from visiontrain.data.sources import load_dataset

    return load_dataset(data, validation=validation_data, task=run.task.name)


def _train(run: _Run, data: DatasetSpec | str | Path, validation_data: str | Path | None) -> dict[str, Any]:
    settings, sink, task = run.settings, run.sink, run.task
    L.seed_everything(settings.seed, workers=True, verbose=False)
    with run.stage("data"):
        spec = _load_spec(run, data, validation_data)
        train, val, test = run.prepare_data(spec)
    if task.model == "detector":
        return _train_detector(run, spec, train, val, test)
    classes = spec.classes
    device = resolve_device(settings)
    base = {
        "classes": classes,
        "device": str(device),
        "class_counts": {"train": spec.class_counts(train), "val": spec.class_counts(val)},
        "rejected": [{"path": str(r.path), "reason": r.reason} for r in run.rejected],
    }
    world = distributed.world_size(settings)
    if world == 1:
        return _train_transfer(run, classes, train, val, test, device, base)
    if len(val) < world:
        raise DataError(f"devices is {world} but there are only {len(val)} validation images: each device validates a "
                        "share of them, so give at least one per device (or set devices to 1)")
    follower = _Follower(settings, task.name, run.run_dir, _cache_for_ranks(run), classes, train, val)
    with distributed.start_ranks(world, on_gpu=device.type == "cuda", scratch_root=run.run_dir, follow=_follow,
                                 payload=follower) as ranks:
        run.ranks = ranks
        run.should_stop = ranks.stop_requested(run.should_stop)
        base["data_parallel"] = {
            "devices": world, "backend": ranks.backend, "batch_size_per_device": settings.batch_size,
            "effective_batch_size": world * settings.batch_size,
            "note": "batch_size is per device: each step averages the gradients of devices x batch_size images; "
                    "the learning rate is not scaled",
        }
        return _train_transfer(run, classes, train, val, test, device, base)


@dataclass
class _Follower:
    """What a rank other than 0 needs to run its part of the stages (the data were prepared by rank 0)."""

    settings: TrainingSettings
    task: str
    run_dir: Path
    cache_dir: Any  # what _Run takes as its cache; pickled to the rank
    classes: list[str]
    train: list[Sample]
    val: list[Sample]


def _cache_for_ranks(run: _Run) -> Any:
    """The run's feature cache as the other ranks open it. A shared tier whose client cannot be passed to
    another process (an S3 client does not pickle) is left out there: those ranks use this machine's store,
    rank 0 still reads and writes the shared tier, and the run says so."""
    import pickle

    location = run.cache_dir
    try:
        pickle.dumps(location)
        return location
    except Exception:  # noqa: BLE001 - any pickling failure means the same thing here
        import dataclasses

        run.warnings.append("the feature cache's shared tier is used by rank 0 only: its client cannot be passed to the "
                            "other ranks, which read and write this machine's store")
        return dataclasses.replace(location, shared=None)


class _SilentSink(EventSink):
    """Events of a rank other than 0: only rank 0 reports (metrics.jsonl, the caller's callback)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.callback = None
        self.listeners = []
        self._file = open(os.devnull, "w", encoding="utf-8")


def _follow(ranks: distributed.Ranks, follower: _Follower) -> None:
    """A rank other than 0: the same stages as rank 0 from the features on, up to the end of training."""
    quiet_lightning()
    sink = _SilentSink()
    run = _Run(follower.settings, get_task(follower.task), follower.run_dir, sink, ranks.stop_requested(lambda: False),
               follower.cache_dir, False)
    run.ranks = ranks
    L.seed_everything(follower.settings.seed, workers=True, verbose=False)
    try:
        _train_transfer(run, follower.classes, follower.train, follower.val, [], ranks.device, {})
    finally:
        sink.close()


def _train_transfer(run: _Run, classes: list[str], train: list[Sample], val: list[Sample], test: list[Sample],
                    device: torch.device, base: dict[str, Any]) -> dict[str, Any]:
    """A head on the backbone's features, then optional fine-tuning, evaluation and the best checkpoint.
    On a data-parallel run every rank runs this; only rank 0 goes on past training."""
    settings, sink, task = run.settings, run.sink, run.task
    network = build_network(settings, len(classes))
    preprocessing = resolve_preprocessing(network.backbone, image_size=settings.image_size, resize_mode=settings.resize_mode)
    base["preprocessing"] = preprocessing.to_dict()

    try:
        with run.stage("features"):
            train_set, val_set = run.features(network, preprocessing, train, val, device)
    except InterruptedError:
        sink.emit("status", status="cancelled", message="stopped before any model was trained")
        return {"status": "cancelled", "message": "stopped before any model was trained", **base}

    train_targets, val_targets = task.targets(train, classes), task.targets(val, classes)
    if settings.learning_rate == "auto":
        if run.ranks.rank == 0:
            settings = run.find_learning_rate(network, train_set, train_targets)
        # Rank 0 found the rate; every rank trains at it.
        settings = run.settings = run.ranks.from_rank0(settings)
        base["learning_rate_found"] = run.found_rate
    loss = task.training_loss(settings, train_targets)
    task.initialize_head(network.head, train_targets)
    module_args = dict(task=task, loss=loss, num_classes=len(classes))
    stop = StopOnRequest(run.should_stop)
    generator = torch.Generator().manual_seed(settings.seed)
    if "data_parallel" in base:
        base["data_parallel"]["features_computed_per_rank"] = run.ranks.features_computed
    with run.stage("head", **run.parallel_fields()):
        L.seed_everything(settings.seed, workers=True, verbose=False)
        head_loader = DataLoader(TensorDataset(train_set.features, train_targets[train_set.sample_index]),
                                 batch_size=settings.batch_size, shuffle=True, generator=generator)
        val_loader = DataLoader(TensorDataset(val_set.features, val_targets), batch_size=max(256, settings.batch_size))
        head_loader, val_loader = run.ranks.loaders(head_loader, val_loader, settings.seed)
        module = TransferModule(network, settings, stage="head", learning_rate=settings.learning_rate, **module_args)
        with one_thread():
            head_ckpt, reporter = run.fit(module, "head", settings.epochs, head_loader, val_loader, device, stop, 0)
        diverged = [module.diverged] if module.diverged else []

    best_stage, best_ckpt = "head", head_ckpt
    fine_tuned: FineTuneInputs | None = None
    if settings.fine_tune and not stop.stopped and head_ckpt and not diverged:
        _load_weights(network, head_ckpt)
        with run.stage("fine_tune", **run.parallel_fields()):
            try:
                fine_tuned = run.fine_tune_inputs(network, preprocessing, train, val, train_targets, device)
            except InterruptedError:
                stop.stopped = True
            if fine_tuned is not None:
                loaders = run.ranks.loaders(*fine_tuned.loaders(train_targets, val_targets, settings.batch_size, generator),
                                            settings.seed)
                module = TransferModule(network, settings, stage="fine_tune", learning_rate=settings.fine_tune_rate,
                                        tail=fine_tuned.tail, front=fine_tuned.front_each_step, **module_args)
                ft_ckpt, _ = run.fit(module, "fine_tune", settings.fine_tune_epochs, *loaders, device, stop, reporter.step)
                diverged += [module.diverged] if module.diverged else []
                best_stage, best_ckpt = run.kept(head_ckpt, ft_ckpt)
    run.warnings += diverged
    if run.ranks.rank != 0:
        return {}  # rank 0 alone evaluates and writes the artifacts

    best = run.best_of(best_stage)
    if best_ckpt is None or best is None:
        sink.emit("status", status="cancelled", message="stopped before the first validation")
        return {"status": "cancelled", "message": "stopped before the first validation", **base}

    _load_weights(network, best_ckpt)
    shutil.rmtree(run.run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    best_metrics = {k: v for k, v in best.items() if (k.startswith("val_") or k == "train_loss") and v is not None}
    results: dict[str, Any] = {}
    with run.stage("evaluation"):
        scorer = _Scorer(run, network, best_stage, preprocessing, device, fine_tuned)
        val_probabilities = scorer.probabilities(val, val_set)
        # Fitted on the best model's validation predictions (tagging: thresholds), saved with it.
        task_state = task.fit_postprocessing(classes, val_probabilities, val_targets)
        save_checkpoint(run.run_dir / CHECKPOINT_NAME, network=network, settings=settings, classes=classes,
                        preprocessing=preprocessing, epoch=best["epoch"], stage=best_stage, metrics=best_metrics,
                        task=task.name, task_state=task_state)
        evaluation = _report(task, classes, val, val_targets, val_probabilities, task_state, run.run_dir)
        if test:
            test_report = _report(task, classes, test, task.targets(test, classes), scorer.probabilities(test, None),
                                  task_state, run.run_dir / TEST_DIR)
            results["test"] = {"num_images": test_report["num_images"], **task.headline(test_report)}

    return _outcome(run, stop, best, best_stage, best_metrics, task.headline(evaluation), results, task_state, base, diverged)


def _outcome(run: _Run, stop: StopOnRequest, best: dict[str, Any], best_stage: str, best_metrics: dict[str, Any],
             evaluation: dict[str, Any], results: dict[str, Any], task_state: dict[str, Any], base: dict[str, Any],
             diverged: list[str]) -> dict[str, Any]:
    """The end of a run that kept a model, for every task: its status event and its summary."""
    status = "cancelled" if stop.stopped else "succeeded"
    message = "stopped on request; the best checkpoint so far is kept" if stop.stopped else "training finished"
    settings = run.settings
    planned = {"head": settings.epochs, "fine_tune": settings.fine_tune_epochs}
    short = [stage for stage, events in run.stage_epochs.items() if events and len(events) < planned[stage]]
    if not stop.stopped and not diverged and short and settings.early_stopping:
        # Say why a run ended before its epochs: the question every short run raises.
        ran = ", ".join(f"{len(run.stage_epochs[s])} of {planned[s]} {s.replace('_', '-')} epochs" for s in short)
        message = (f"stopped early ({ran}): no gain in {run.task.monitor} of at least {settings.min_delta:g} for "
                   f"{settings.patience} epochs; kept {best_stage.replace('_', '-')} epoch {best['epoch']}")
    if diverged:
        message = f"training stopped early because the loss was not finite; the best checkpoint before (epoch {best['epoch']}) is kept"
    run.sink.emit("status", status=status, message=message)
    return {
        "status": status,
        "message": message,
        "best_epoch": best["epoch"],
        "best_stage": best_stage,
        "best_metrics": best_metrics,
        "headline": {"name": run.task.monitor, "value": best_metrics.get(run.task.monitor)},
        "evaluation": evaluation,
        **results,
        "task_state": task_state,
        "epochs_run": {stage: len(events) for stage, events in run.stage_epochs.items()},
        **base,
    }


def sample_record(sample: Sample, task: Task) -> dict[str, Any]:
    """How a sample is listed in the run directory (``*_samples.json``); classification keeps ``label``,
    detection lists the boxes."""
    record: dict[str, Any] = {"path": str(sample.path), "labels": list(sample.labels)}
    if task.name == "classification":
        record["label"] = sample.label
    if task.model == "detector":
        record["boxes"] = [{"concept": b.concept, "box": list(b.corners)} for b in sample.boxes]
    return record


def _train_detector(run: _Run, spec: DatasetSpec, train: list[Sample], val: list[Sample], test: list[Sample]) -> dict[str, Any]:
    """Detection's stages (``training/detection.py``): body outputs once, the detector's heads on them,
    optional fine-tuning on images; then the same checkpoint, evaluation and summary as every task."""
    from visiontrain.models.detector import build_detector, detector_options
    from visiontrain.training import detection as det

    settings, sink, task = run.settings, run.sink, run.task
    classes = spec.classes
    device = resolve_device(settings, task.name)
    network = build_detector(settings, len(classes))
    trained = [s for s in train if s.boxes]  # only images with boxes are trained on; negatives validate
    train_targets, val_targets = task.targets(trained, classes), task.targets(val, classes)
    base = {
        "classes": classes,
        "device": str(device),
        "preprocessing": None,
        "detector": detector_options(settings, len(classes)),
        "class_counts": {"train": spec.class_counts(trained), "val": spec.class_counts(val)},
        "box_counts": {"train": _box_counts(classes, trained), "val": _box_counts(classes, val)},
        "rejected": [{"path": str(r.path), "reason": r.reason} for r in run.rejected],
    }
    copies = settings.augmented_copies
    total = len(trained) * (1 + copies) + len(val)
    done = 0

    def progress(step: int) -> None:
        nonlocal done
        done += step
        sink.emit("features", done=done, total=total, cache_hits=0)

    try:
        with run.stage("features"):
            common = dict(settings=settings, device=device, spill_dir=det.spill_dir(run.run_dir), should_stop=run.should_stop,
                          on_progress=progress)
            train_out = det.BodyOutputs(network, trained, train_targets, copies=copies, **common)
            val_out = det.BodyOutputs(network, val, val_targets, copies=0, **common)
            run.counts.update(train_variants=len(trained) * (1 + copies), body_on_disk=train_out.on_disk + val_out.on_disk,
                              body_bytes_in_memory=train_out.bytes_in_memory + val_out.bytes_in_memory)
    except InterruptedError:
        det.clear_spill(run.run_dir)
        sink.emit("status", status="cancelled", message="stopped before any model was trained")
        return {"status": "cancelled", "message": "stopped before any model was trained", **base}

    stop = StopOnRequest(run.should_stop)
    generator = torch.Generator().manual_seed(settings.seed)
    diverged: list[str] = []
    with run.stage("head"):
        L.seed_everything(settings.seed, workers=True, verbose=False)
        head_loader, val_loader = det.body_loaders(train_out, val_out, settings)
        module = det.DetectionModule(network, settings, task=task, stage="head", learning_rate=settings.learning_rate)
        head_ckpt, reporter = run.fit(module, "head", settings.epochs, head_loader, val_loader, device, stop, 0)
        diverged += [module.diverged] if module.diverged else []
        if module.diverged and module.finite_steps == 0:
            det.clear_spill(run.run_dir)
            raise DataError(module.diverged + "; not one step could be trained, so there is no model")
    best_stage, best_ckpt = "head", head_ckpt
    if settings.fine_tune and not stop.stopped and head_ckpt and not diverged:
        _load_weights(network, head_ckpt)
        with run.stage("fine_tune"):
            ft_train, ft_val = det.image_loaders(trained, train_targets, val, val_targets, settings, device, generator)
            module = det.DetectionModule(network, settings, task=task, stage="fine_tune",
                                         learning_rate=settings.fine_tune_rate)
            ft_ckpt, _ = run.fit(module, "fine_tune", settings.fine_tune_epochs, ft_train, ft_val, device, stop, reporter.step)
            diverged += [module.diverged] if module.diverged else []
        best_stage, best_ckpt = run.kept(head_ckpt, ft_ckpt)
    run.warnings += diverged

    best = run.best_of(best_stage)
    if best_ckpt is None or best is None:
        det.clear_spill(run.run_dir)
        if diverged:
            raise DataError(diverged[0] + "; no epoch finished with a usable model")
        sink.emit("status", status="cancelled", message="stopped before the first validation")
        return {"status": "cancelled", "message": "stopped before the first validation", **base}

    _load_weights(network, best_ckpt)
    shutil.rmtree(run.run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    best_metrics = {k: v for k, v in best.items() if (k.startswith("val_") or k.startswith("train_loss")) and v is not None}
    results: dict[str, Any] = {}
    with run.stage("evaluation"):
        network.eval()
        batch = max(8, settings.batch_size)
        val_found = det.detect(network, val, batch_size=batch, device=device, outputs=val_out if best_stage == "head" else None)
        det.clear_spill(run.run_dir)
        task_state = task.fit_postprocessing(settings, val_found, val_targets)
        save_checkpoint(run.run_dir / CHECKPOINT_NAME, network=network, settings=settings, classes=classes,
                        preprocessing=None, epoch=best["epoch"], stage=best_stage, metrics=best_metrics,
                        task=task.name, task_state=task_state, detector=base["detector"])
        evaluation = _detection_report(task, classes, val, val_found, val_targets, task_state, run.run_dir)
        if test:
            test_found = det.detect(network, test, device=device)
            test_report = _detection_report(task, classes, test, test_found, task.targets(test, classes), task_state,
                                            run.run_dir / TEST_DIR)
            results["test"] = {"num_images": test_report["num_images"], **task.headline(test_report)}

    return _outcome(run, stop, best, best_stage, best_metrics, task.headline(evaluation), results, task_state, base, diverged)


def _box_counts(classes: list[str], samples: list[Sample]) -> dict[str, int]:
    from visiontrain.tasks.detection import box_counts

    return box_counts(classes, samples)


def _detection_report(task: Any, classes: list[str], samples: list[Sample], found: list[dict[str, torch.Tensor]],
                      targets: list[dict[str, torch.Tensor]], state: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from visiontrain.evaluation.report import write_report

    report = task.report(classes, found, targets, [str(s.path) for s in samples], state)
    write_report(report, out_dir)
    return report


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one CPU thread while a head trains on cached features: its batches are far too small to gain
    from more threads, and on a busy machine each tiny operation otherwise waits for the whole pool (dropout
    on a 32 x 1280 batch: 0.23 ms on one thread, 4.3 ms on two with the other core busy; the same on a quiet
    one). Sweeps train their trials the same way, so a trial and its re-run give the same model."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _load_weights(network: TransferNet, lightning_checkpoint: str) -> None:
    state = torch.load(lightning_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    # Only the network's weights: the module also holds the loss's buffers (tagging's positive weights).
    network.load_state_dict({k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")})


class _Scorer:
    """Probabilities of the best model for a list of samples. A head-stage model runs only the head
    on cached features (validation features are at hand; test features come from the cache or are
    computed once); a fine-tuned one runs the tail on the validation images' kept front outputs, and
    the whole network on other images."""

    def __init__(self, run: _Run, network: TransferNet, stage: str, preprocessing: Preprocessing, device: torch.device,
                 fine_tuned: FineTuneInputs | None = None):
        self.run, self.network, self.stage, self.preprocessing, self.device = run, network, stage, preprocessing, device
        self.fine_tuned = fine_tuned

    def probabilities(self, samples: list[Sample], features: FeatureSet | None) -> torch.Tensor:
        network, run = self.network, self.run
        network.eval()
        if self.stage == "fine_tune" and features is not None and self.fine_tuned is not None and self.fine_tuned.tail is not None:
            tail = self.fine_tuned.tail.to(self.device)
            network.head.to(self.device)
            with torch.inference_mode():
                logits = torch.cat([network.head(tail(chunk.to(self.device).float())).float().cpu()
                                    for chunk in self.fine_tuned.val_inputs.split(run.settings.batch_size)])
            network.cpu()
            return run.task.probabilities(logits)
        if self.stage == "head":
            if features is None:
                cache = FeatureCache(run.cache_dir, FeatureSpace.of(run.settings, self.preprocessing))
                features = extract_features(network, samples, settings=run.settings, preprocessing=self.preprocessing,
                                            cache=cache, device=self.device)
            with torch.inference_mode():
                logits = network.head(features.features)
        else:
            loader = DataLoader(ImageSamples(samples, torch.zeros(len(samples)), model_input(self.preprocessing), self.preprocessing.image_size),
                                batch_size=run.settings.batch_size)
            network.to(self.device)
            with torch.inference_mode():
                logits = torch.cat([network(images.to(self.device)).float().cpu() for images, _ in loader])
            network.cpu()
        return run.task.probabilities(logits)


def _report(task: Task, classes: list[str], samples: list[Sample], targets: torch.Tensor, probabilities: torch.Tensor,
            state: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from visiontrain.evaluation.report import write_report

    report = task.report(classes, targets, probabilities, [str(s.path) for s in samples], state)
    write_report(report, out_dir)
    return report
