"""One training run, top to bottom: data → features → head → (fine-tuning) → best checkpoint → evaluation.

Everything a run produces lands in its run directory (names in ``visiontrain.engine``), and every
step is announced as an event. The run stops cleanly on request (cancel flag or Ctrl-C) after the
current batch, keeping the best checkpoint so far.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from visiontrain.data.dataset import DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.data.images import open_image
from visiontrain.data.transforms import model_input, training_input
from visiontrain.models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from visiontrain.models.classifier import TransferNet, build_network
from visiontrain.models.preprocessing import Preprocessing, resolve_preprocessing
from visiontrain.settings import SettingsError, TrainingSettings, load_settings
from visiontrain.training.callbacks import EventReporter, StopOnRequest
from visiontrain.training.events import EventSink
from visiontrain.training.features import FeatureCache, FeatureSet, FeatureSpace, default_cache_dir, extract_features
from visiontrain.training.module import TransferModule
from visiontrain.training.trainer import build_trainer, quiet_lightning, resolve_device

SUMMARY_FILE = "summary.json"
SETTINGS_FILE = "settings.yaml"
TRAIN_SAMPLES_FILE = "train_samples.json"
VAL_SAMPLES_FILE = "val_samples.json"
CHECKPOINTS_DIR = "checkpoints"  # Lightning's per-stage best, until best.pt is written


class ImageSamples(Dataset):
    """Images decoded on demand (fine-tuning stage and evaluation of a fine-tuned model)."""

    def __init__(self, samples: list[Sample], class_index: dict[str, int], transform: Callable, draft_size: int):
        self.samples, self.class_index, self.transform, self.draft_size = samples, class_index, transform, draft_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        return self.transform(open_image(sample.path, draft_size=self.draft_size)), self.class_index[sample.label]


def as_settings(settings: TrainingSettings | dict[str, Any] | None) -> TrainingSettings:
    if isinstance(settings, TrainingSettings):
        return settings
    return load_settings(overrides=settings or {})


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

    def __init__(self, settings: TrainingSettings, run_dir: Path, sink: EventSink, should_stop: Callable[[], bool], cache_dir: Path, progress: bool):
        self.settings, self.run_dir, self.sink, self.should_stop = settings, run_dir, sink, should_stop
        self.cache_dir, self.progress = cache_dir, progress
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.warnings: list[str] = []
        self.stage_epochs: dict[str, list[dict[str, Any]]] = {"head": [], "fine_tune": []}
        self.sink.listeners.append(self._remember_epochs)

    def _remember_epochs(self, event: dict[str, Any]) -> None:
        if event["type"] == "epoch":
            self.stage_epochs[event["stage"]].append(event)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.sink.emit("stage", stage=name, status="started")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            self.sink.emit("stage", stage=name, status="finished")

    # --- data

    def prepare_data(self, data: DatasetSpec | str | Path, validation_data: str | Path | None) -> tuple[DatasetSpec, list[Sample], list[Sample]]:
        from visiontrain.data.checks import check_images, dataset_warnings, require_training_images
        from visiontrain.data.sources import load_dataset
        from visiontrain.data.split import stratified_split

        spec = data if isinstance(data, DatasetSpec) else load_dataset(data, validation=validation_data)
        if len(spec.classes) < 2:
            raise DataError(f"at least 2 classes are needed to train a classifier; found {len(spec.classes)}: {spec.classes}")
        train, rejected = check_images(spec.train)
        val: list[Sample] | None = None
        if spec.val is not None:
            val, rejected_val = check_images(spec.val)
            rejected += rejected_val
        spec.rejected = [*spec.rejected, *rejected]
        if val is None:
            train, val = stratified_split(train, self.settings.validation_split, self.settings.seed)
        require_training_images(spec.classes, train)
        missing_val = [c for c in spec.classes if not any(s.label == c for s in val)]
        if missing_val:
            raise DataError(f"no validation images for class(es) {', '.join(missing_val)}: add validation images for them, or leave the validation set to the split")
        self.warnings += dataset_warnings(spec.classes, train, val)
        self.counts.update(train_images=len(train), val_images=len(val), rejected=len(spec.rejected))
        for name, samples in ((TRAIN_SAMPLES_FILE, train), (VAL_SAMPLES_FILE, val)):
            (self.run_dir / name).write_text(json.dumps([{"path": str(s.path), "label": s.label} for s in samples]))
        return spec, train, val

    # --- stages

    def features(self, network: TransferNet, preprocessing: Preprocessing, train: list[Sample], val: list[Sample],
                 class_index: dict[str, int], device: torch.device) -> tuple[FeatureSet, FeatureSet]:
        cache = FeatureCache(self.cache_dir, FeatureSpace.of(self.settings, preprocessing))
        done_before = 0

        def report(done: int, total: int, hits: int) -> None:
            self.sink.emit("features", done=done_before + done, total=total_all, cache_hits=hits)

        total_all = len(train) * (1 + self.settings.augmented_copies) + len(val)
        common = dict(settings=self.settings, preprocessing=preprocessing, cache=cache, device=device, should_stop=self.should_stop)
        train_set = extract_features(network, train, class_index, augmented_copies=self.settings.augmented_copies, on_progress=report, **common)
        done_before = len(train_set.labels)
        val_set = extract_features(network, val, class_index, augmented_copies=0, on_progress=report, **common)
        self.counts.update(
            train_features=len(train_set.labels),
            cache_hits=train_set.hits + val_set.hits,
            cache_misses=train_set.misses + val_set.misses,
        )
        return train_set, val_set

    def fit(self, module: TransferModule, stage: str, epochs: int, train_loader: DataLoader, val_loader: DataLoader,
            device: torch.device, stop: StopOnRequest, step_offset: int) -> tuple[str | None, EventReporter]:
        reporter = EventReporter(self.sink, stage, step_offset)
        trainer, checkpoint = build_trainer(
            self.settings, max_epochs=epochs, checkpoint_dir=self.run_dir / CHECKPOINTS_DIR / stage, checkpoint_name="best",
            callbacks=[reporter, stop], device=device, progress=self.progress,
        )
        try:
            trainer.fit(module, train_loader, val_loader)
        except SIGTERMException:
            # Lightning ends fit this way after a SIGTERM (our handler has set the stop flag too):
            # a stop request like any other, so the best checkpoint so far is kept.
            stop.stopped = True
        return (checkpoint.best_model_path or None), reporter

    def best_of(self, stage: str) -> dict[str, Any] | None:
        """The epoch the stage's checkpoint was taken at: the first epoch with the highest accuracy."""
        epochs = self.stage_epochs[stage]
        if not epochs:
            return None
        top = max(e["val_accuracy"] for e in epochs)
        return next(e for e in epochs if e["val_accuracy"] == top)


def run_training(
    settings: TrainingSettings | dict[str, Any] | None,
    data: DatasetSpec | str | Path,
    run_dir: str | Path,
    *,
    validation_data: str | Path | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    settings = as_settings(settings)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)  # a previous run's intermediates
    (run_dir / SETTINGS_FILE).write_text(settings.to_yaml())
    quiet_lightning()

    interrupted = threading.Event()
    stop_requested = lambda: interrupted.is_set() or bool(should_stop and should_stop())  # noqa: E731
    sink = EventSink(run_dir, callback)
    run = _Run(settings, run_dir, sink, stop_requested, Path(cache_dir) if cache_dir else default_cache_dir(), progress)
    started = time.perf_counter()
    summary: dict[str, Any] = {"status": "running"}
    try:
        with _stop_signals(interrupted):
            summary = _train(run, data, validation_data)
    except (DataError, SettingsError) as exc:
        summary = {"status": "failed", "message": str(exc)}
        sink.emit("status", status="failed", message=str(exc))
        raise
    except Exception as exc:
        summary = {"status": "failed", "message": f"{type(exc).__name__}: {exc}"}
        sink.emit("status", status="failed", message=summary["message"])
        raise
    finally:
        run.timings["total"] = round(time.perf_counter() - started, 3)
        summary.update(timings=run.timings, counts=run.counts, warnings=run.warnings)
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        sink.close()
    return summary


def _train(run: _Run, data: DatasetSpec | str | Path, validation_data: str | Path | None) -> dict[str, Any]:
    settings, sink = run.settings, run.sink
    L.seed_everything(settings.seed, workers=True, verbose=False)
    with run.stage("data"):
        spec, train, val = run.prepare_data(data, validation_data)
    classes = spec.classes
    class_index = {name: i for i, name in enumerate(classes)}
    device = resolve_device(settings)
    network = build_network(settings, len(classes))
    preprocessing = resolve_preprocessing(network.backbone, image_size=settings.image_size, resize_mode=settings.resize_mode)
    base = {
        "classes": classes,
        "device": str(device),
        "preprocessing": preprocessing.to_dict(),
        "class_counts": {"train": spec.class_counts(train), "val": spec.class_counts(val)},
        "rejected": [{"path": str(r.path), "reason": r.reason} for r in spec.rejected],
    }

    try:
        with run.stage("features"):
            train_set, val_set = run.features(network, preprocessing, train, val, class_index, device)
    except InterruptedError:
        sink.emit("status", status="cancelled", message="stopped before any model was trained")
        return {"status": "cancelled", "message": "stopped before any model was trained", **base}

    stop = StopOnRequest(run.should_stop)
    generator = torch.Generator().manual_seed(settings.seed)
    with run.stage("head"):
        L.seed_everything(settings.seed, workers=True, verbose=False)
        head_loader = DataLoader(TensorDataset(train_set.features, train_set.labels), batch_size=settings.batch_size,
                                 shuffle=True, generator=generator)
        val_loader = DataLoader(TensorDataset(val_set.features, val_set.labels), batch_size=max(256, settings.batch_size))
        module = TransferModule(network, settings, stage="head", learning_rate=settings.learning_rate)
        head_ckpt, reporter = run.fit(module, "head", settings.epochs, head_loader, val_loader, device, stop, 0)

    best_stage, best_ckpt = "head", head_ckpt
    if settings.fine_tune and not stop.stopped and head_ckpt:
        _load_weights(network, head_ckpt)
        with run.stage("fine_tune"):
            workers = 4 if device.type == "cuda" else 0
            size = preprocessing.image_size
            ft_train = DataLoader(ImageSamples(train, class_index, training_input(settings, preprocessing), size),
                                  batch_size=settings.batch_size, shuffle=True, generator=generator, num_workers=workers)
            ft_val = DataLoader(ImageSamples(val, class_index, model_input(preprocessing), size),
                                batch_size=settings.batch_size, num_workers=workers)
            module = TransferModule(network, settings, stage="fine_tune", learning_rate=settings.fine_tune_learning_rate)
            ft_ckpt, _ = run.fit(module, "fine_tune", settings.fine_tune_epochs, ft_train, ft_val, device, stop, reporter.step)
        head_best, ft_best = run.best_of("head"), run.best_of("fine_tune")
        if ft_ckpt and ft_best and head_best and ft_best["val_accuracy"] > head_best["val_accuracy"]:
            best_stage, best_ckpt = "fine_tune", ft_ckpt

    best = run.best_of(best_stage)
    if best_ckpt is None or best is None:
        sink.emit("status", status="cancelled", message="stopped before the first validation")
        return {"status": "cancelled", "message": "stopped before the first validation", **base}

    _load_weights(network, best_ckpt)
    best_metrics = {k: best[k] for k in ("val_accuracy", "val_loss", "train_loss") if best.get(k) is not None}
    save_checkpoint(run.run_dir / CHECKPOINT_NAME, network=network, settings=settings, classes=classes,
                    preprocessing=preprocessing, epoch=best["epoch"], stage=best_stage, metrics=best_metrics)
    shutil.rmtree(run.run_dir / CHECKPOINTS_DIR, ignore_errors=True)

    with run.stage("evaluation"):
        evaluation = _evaluate_best(run, network, best_stage, val, val_set, class_index, preprocessing, classes, device)

    status = "cancelled" if stop.stopped else "succeeded"
    message = "stopped on request; the best checkpoint so far is kept" if stop.stopped else "training finished"
    sink.emit("status", status=status, message=message)
    return {
        "status": status,
        "message": message,
        "best_epoch": best["epoch"],
        "best_stage": best_stage,
        "best_metrics": best_metrics,
        "evaluation": {k: evaluation[k] for k in ("accuracy", "loss", "macro") if k in evaluation},
        "epochs_run": {stage: len(events) for stage, events in run.stage_epochs.items()},
        **base,
    }


def _load_weights(network: TransferNet, lightning_checkpoint: str) -> None:
    state = torch.load(lightning_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    network.load_state_dict({k.removeprefix("network."): v for k, v in state.items()})


def _evaluate_best(run: _Run, network: TransferNet, stage: str, val: list[Sample], val_set: FeatureSet,
                   class_index: dict[str, int], preprocessing: Preprocessing, classes: list[str], device: torch.device) -> dict[str, Any]:
    """Validation report of the best model; a head-stage model reuses the cached validation features."""
    from visiontrain.evaluation.report import build_report, write_report

    network.eval()
    with torch.inference_mode():
        if stage == "head":
            logits = network.head(val_set.features)
        else:
            loader = DataLoader(ImageSamples(val, class_index, model_input(preprocessing), preprocessing.image_size),
                                batch_size=run.settings.batch_size)
            network.to(device)
            logits = torch.cat([network(images.to(device)).float().cpu() for images, _ in loader])
            network.cpu()
    probabilities = torch.softmax(logits.float(), dim=1).numpy()
    y_true = [class_index[s.label] for s in val]
    report = build_report(classes, y_true, probabilities, [str(s.path) for s in val])
    write_report(report, run.run_dir)
    return report
