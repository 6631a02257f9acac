"""The worker process: claims queued versions one at a time and trains them with the engine.

It never runs inside the web server. It beats a heartbeat (a thread) so that a worker killed
mid-training is noticed: at every start, and every few seconds while running, each worker marks
failed the running versions whose worker is gone (:func:`visiontrain.jobs.queue.recover_stale`).
SIGTERM/SIGINT stop it gracefully: a run in progress stops after its current batch and its version
goes back to the queue for the next worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from visiontrain.blobs import BlobNotFound, BlobStore
from visiontrain.data.dataset import Box, DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.jobs import queue
from visiontrain.jobs.metrics import MetricsWriter
from visiontrain.jobs.supervisor import SUPERVISOR_PID_ENV
from visiontrain.services.platform import Platform
from visiontrain.settings import Accelerator, SettingsError, TrainingSettings
from visiontrain.store.base import Split, VersionStatus, utcnow
from visiontrain.store.models import Artifact, ModelVersion, VersionSample

log = logging.getLogger("visiontrain.worker")
CANCEL_POLL_SECONDS = 1.0
# Artifact kind -> picture a run may write (classification: confusion matrix; tagging: precision-recall curves).
PICTURES = {"confusion_matrix": "confusion_matrix.png", "pr_curves": "pr_curves.png", "detections": "detections.png"}
TEST_DIR = "test"  # the engine's report of a version's held-out test set (training.runner.TEST_DIR)


def _sample(path: Path, annotation: Any) -> Sample:
    """A snapshot annotation as a sample: a name is one label, a list of names the image's concepts, a list
    of ``{"concept", "box"}`` its boxes (detection; ``[]``: without concept, a negative)."""
    if isinstance(annotation, str):
        return Sample(path, (annotation,))
    items = list(annotation or ())
    if items and isinstance(items[0], dict):
        return Sample.with_boxes(path, [Box(item["concept"], *map(float, item["box"])) for item in items])
    return Sample(path, tuple(items))


def fetch_images(blobs: BlobStore, images: Sequence[tuple[str, str]], scratch: Path) -> list[Path]:
    """Each (blob key, image name)'s bytes as a file that lasts as long as ``scratch`` (the caller removes it):
    a bounded read cache alone could evict a large snapshot's first images before they are decoded. Fetched
    concurrently: an object store answers each request in milliseconds, and a snapshot has thousands."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(image: tuple[str, str]) -> Path:
        key, name = image
        try:
            return blobs.local_file(key, scratch)
        except BlobNotFound:
            raise DataError(f"image {name} is missing from storage ({key})") from None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(fetch, images))


class TrainingWorker:
    def __init__(self, platform: Platform, capabilities: queue.Capabilities | None = None):
        """``capabilities``: what it may claim (default: this machine's GPUs, or its CPU)."""
        self.platform = platform
        self.config = platform.config
        self.capabilities = capabilities or queue.Capabilities.of_this_machine()
        self.stopping = threading.Event()
        self.worker_id: str | None = None
        from visiontrain.jobs.sweeps import SweepJobs

        self.sweeps = SweepJobs(self)

    # --- lifecycle

    def run(self, *, max_jobs: int | None = None) -> None:
        """Serve the queue until stopped (or until ``max_jobs`` versions ran)."""
        with self.platform.sessions() as session:
            self.worker_id = queue.register_worker(session, self.capabilities).id
            session.commit()
        log.info("worker %s started (pid %d, %s, data directory %s)", self.worker_id, os.getpid(),
                 self.capabilities.describe(), self.config.data_dir)
        self._recover()
        self._remove_dead_runs_scratch()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        jobs = 0
        try:
            while not self.stopping.is_set() and (max_jobs is None or jobs < max_jobs):
                with self.platform.sessions() as session:
                    version_id = queue.claim_next(session, worker_id=self.worker_id)
                if version_id is None:
                    if not self.sweeps.run_one():  # no version queued: a sweep's trial, if any
                        self.stopping.wait(self.config.poll_seconds)
                    continue
                jobs += 1
                self.run_version(version_id)
        finally:
            self.stopping.set()
            with self.platform.sessions() as session:
                queue.mark_stopped(session, worker_id=self.worker_id)
                session.commit()
            log.info("worker %s stopped", self.worker_id)

    def _remove_dead_runs_scratch(self) -> None:
        """Run directories (and their images) a killed worker of this machine left: those of versions no
        longer running. A version running on another worker of this data directory keeps its own."""
        import re

        if not self.config.runs_dir.is_dir():
            return
        found = {}
        for path in self.config.runs_dir.iterdir():
            match = re.fullmatch(r"version-(\d+)(-images)?", path.name)
            if match and path.is_dir():
                found.setdefault(int(match.group(1)), []).append(path)
        if not found:
            return
        with self.platform.sessions() as session:
            running = set(session.scalars(select(ModelVersion.id).where(
                ModelVersion.id.in_(found), ModelVersion.status == VersionStatus.running)))
        for version_id, paths in found.items():
            if version_id not in running:
                for path in paths:
                    shutil.rmtree(path, ignore_errors=True)
                log.info("removed the scratch of version %d, left by a worker that was killed", version_id)

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %d: stopping after the current batch", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _heartbeat_loop(self) -> None:
        last_recovery = time.monotonic()
        supervisor = os.environ.get(SUPERVISOR_PID_ENV)
        while not self.stopping.wait(self.config.heartbeat_seconds):
            if supervisor and os.getppid() != int(supervisor):
                log.warning("the process that started this worker (%s) is gone: stopping", supervisor)
                self.stopping.set()
                break
            try:
                with self.platform.sessions() as session:
                    queue.beat(session, worker_id=self.worker_id)  # type: ignore[arg-type]
                    session.commit()
                if time.monotonic() - last_recovery >= self.config.heartbeat_seconds * 2:
                    self._recover()
                    last_recovery = time.monotonic()
            except Exception:  # a database hiccup must not kill the heartbeat
                log.exception("heartbeat failed")

    def _recover(self) -> None:
        with self.platform.sessions() as session:
            failed = queue.recover_stale(
                session, stale_after_seconds=self.config.stale_after_seconds, current_worker_id=self.worker_id
            )
        for version_id in failed:
            log.warning("version %d was running on a worker that stopped unexpectedly: marked failed", version_id)

    # --- one version

    def run_version(self, version_id: int) -> None:
        from visiontrain import engine

        run_dir = self.config.runs_dir / f"version-{version_id}"
        shutil.rmtree(run_dir, ignore_errors=True)
        writer = MetricsWriter(self.platform.sessions, version_id)
        should_stop = _CancelPoll(self, version_id)
        log.info("version %d: training", version_id)
        images_dir = self.config.runs_dir / f"version-{version_id}-images"
        try:
            settings, spec = self._load_job(version_id, images_dir)
            summary = engine.train(
                settings, spec, run_dir, callback=writer, should_stop=should_stop, cache_dir=self._cache_dir()
            )
            self._flush_quietly(writer, version_id)
            if should_stop.given_up:  # recovery (or another worker) took the version: nothing of this run is kept
                log.warning("version %d: no longer running on this worker (%s): results dropped", version_id, should_stop.given_up)
                return
            if summary.get("status") == "cancelled" and self.stopping.is_set() and not should_stop.cancel_requested:
                self._requeue(version_id)  # stopped by our shutdown, not by the user: train it again later
                return
            self._store_results(version_id, run_dir, summary)
        except (DataError, SettingsError) as exc:
            self._flush_quietly(writer, version_id)
            self._finish(version_id, VersionStatus.failed, error=str(exc))
        except Exception as exc:
            log.error("version %d failed:\n%s", version_id, traceback.format_exc())
            self._flush_quietly(writer, version_id)
            self._finish(version_id, VersionStatus.failed, error=f"{type(exc).__name__}: {exc}")
        except BaseException:
            # This process is ending mid-run (Lightning turns SIGTERM into SystemExit; Ctrl-C): the user
            # did not cancel, so the version goes back to the queue for the next worker.
            self._flush_quietly(writer, version_id)
            self._requeue(version_id)
            if not self.stopping.is_set():
                raise
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(images_dir, ignore_errors=True)

    @staticmethod
    def _flush_quietly(writer: MetricsWriter, version_id: int) -> None:
        """The last metrics rows, with a few retries; the run's results are stored even when they cannot be."""
        try:
            writer.flush(attempts=3)
        except Exception:
            log.exception("could not store the last %d metrics rows of version %d", writer.pending, version_id)

    def _cache_dir(self) -> "FeatureCacheLocation":
        """The feature cache on this machine, capped at feature_cache_gb, with the blob store as its shared tier
        when that is an object store the cluster shares (each image's features computed once per cluster)."""
        from visiontrain.training.feature_store import FeatureCacheLocation, shared_tier

        root = Path(os.environ.get("VISIONTRAIN_CACHE_DIR") or self.config.data_dir / "feature-cache")
        return FeatureCacheLocation.resolve(root, size_gb=self.config.feature_cache_gb,
                                            shared=shared_tier(self.platform.blobs))

    def _load_job(self, version_id: int, images_dir: Path | None = None) -> tuple[TrainingSettings, DatasetSpec]:
        """The version's settings and its snapshot as the engine's dataset description (the view's task);
        the images are files in ``images_dir`` for the run's length when they live in an object store.

        A snapshot row's annotation is one concept name (classification), a list of them (tagging;
        ``[]``: without concept, an all-negative example) or a list of boxes (detection).
        """
        with self.platform.sessions() as session:
            version = session.get(ModelVersion, version_id)
            assert version is not None
            task = version.model.view.kind
            classes = [c.name for c in version.model.concepts]
            samples = session.scalars(select(VersionSample).where(VersionSample.version_id == version_id).order_by(VersionSample.id)).all()
            settings = self._on_this_worker(TrainingSettings(**version.settings))
            images_dir = images_dir or self.config.runs_dir / f"version-{version_id}-images"
            files = fetch_images(self.platform.blobs, [(s.blob_key, s.image_name) for s in samples], images_dir)
            train = [_sample(files[i], s.annotation) for i, s in enumerate(samples) if s.split == Split.train]
            val = [_sample(files[i], s.annotation) for i, s in enumerate(samples) if s.split == Split.val]
            # Held-out test images: evaluated once after training, never used to choose the model.
            test = [_sample(files[i], s.annotation) for i, s in enumerate(samples) if s.split == Split.test]
            warnings = list((version.data_split or {}).get("warnings", []))
        return settings, DatasetSpec(classes=classes, train=train, val=val, test=test or None, source=f"version {version_id}",
                                     task=task, warnings=warnings)

    def _on_this_worker(self, settings: TrainingSettings) -> TrainingSettings:
        """``accelerator: auto`` runs on what this worker has: its CPU when it is a CPU worker (``--gpus 0`` on a
        GPU machine included); a GPU worker leaves it to the engine, which picks the GPU."""
        if self.capabilities.accelerator == queue.CPU and settings.accelerator == "auto":
            return settings.model_copy(update={"accelerator": Accelerator.cpu})
        return settings

    def _store_results(self, version_id: int, run_dir: Path, summary: dict[str, Any]) -> None:
        import json

        from visiontrain.models.checkpoint import CHECKPOINT_NAME

        status = VersionStatus(summary.get("status", "failed"))
        checkpoint = run_dir / CHECKPOINT_NAME
        artifacts: list[tuple[str, Path]] = []
        warnings = list(summary.get("warnings", []))
        if checkpoint.is_file():
            artifacts.append(("checkpoint", checkpoint))
            if status == VersionStatus.succeeded:
                try:
                    from visiontrain import engine

                    artifacts.append(("onnx", engine.export_onnx(run_dir)))
                except Exception as exc:  # the checkpoint still predicts; say why there is no ONNX file
                    log.exception("version %d: ONNX export failed", version_id)
                    warnings.append(f"ONNX export failed: {type(exc).__name__}: {exc}")
        for kind, picture in PICTURES.items():  # the task's picture: confusion matrix or PR curves
            if (run_dir / picture).is_file():
                artifacts.append((kind, run_dir / picture))
        # The held-out test set's report and picture (``test/``), when the version had test images.
        for kind, name in ({"test_evaluation": "evaluation.json"} | {f"test_{k}": p for k, p in PICTURES.items()}).items():
            if (run_dir / TEST_DIR / name).is_file():
                artifacts.append((kind, run_dir / TEST_DIR / name))
        evaluation_file = run_dir / "evaluation.json"
        evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.is_file() else None
        summary = {**summary, "warnings": warnings}
        if not self._owns(version_id):
            log.warning("version %d: given up by recovery while it trained; its results are not stored", version_id)
            return
        keys = [f"versions/{version_id}/{'test-' if path.parent.name == TEST_DIR else ''}{path.name}" for _, path in artifacts]
        for key, (_, path) in zip(keys, artifacts):
            self.platform.blobs.put_file(key, path)
        with self.platform.sessions() as session:
            # The outcome first, conditionally: recovery may have failed the version a moment ago, and
            # then no artifact row may point at it (one transaction: both or neither).
            owned = self._finish(
                version_id,
                status,
                error=summary.get("message") if status == VersionStatus.failed else None,
                session=session,
                commit=False,
                summary=summary,
                evaluation=evaluation,
                timings=summary.get("timings"),
                best_epoch=summary.get("best_epoch"),
                best_stage=summary.get("best_stage"),
                best_metrics=summary.get("best_metrics"),
            )
            if owned:
                for key, (kind, path) in zip(keys, artifacts):
                    session.add(Artifact(version_id=version_id, kind=kind, blob_key=key, size_bytes=path.stat().st_size))
                session.commit()
            else:
                session.rollback()
        if not owned:
            for key in keys:
                self.platform.blobs.delete(key)
            log.warning("version %d: given up by recovery while it trained; its results are not stored", version_id)
            return
        log.info("version %d: %s", version_id, status.value)

    def _owns(self, version_id: int) -> bool:
        """The version is still running, on this worker (recovery did not give it up)."""
        with self.platform.sessions() as session:
            row = session.execute(select(ModelVersion.status, ModelVersion.worker_id).where(ModelVersion.id == version_id)).one_or_none()
        return row is not None and row[0] == VersionStatus.running and row[1] == self.worker_id

    def _finish(  # type: ignore[no-untyped-def]
        self, version_id: int, status: VersionStatus, *, error: str | None, session=None, commit: bool = True, **values: Any
    ) -> bool:
        """Record the outcome, unless recovery already gave the version up (it then stays failed).
        True when this worker still owned the version and the outcome was written."""
        own = session is None
        session = session or self.platform.sessions()
        try:
            written = session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id, ModelVersion.status == VersionStatus.running, ModelVersion.worker_id == self.worker_id)
                .values(status=status.value, error=error, finished_at=utcnow(), **values)
            ).rowcount
            if commit:
                session.commit()
            return written == 1
        finally:
            if own:
                session.close()

    def _requeue(self, version_id: int) -> None:
        with self.platform.sessions() as session:
            if queue.requeue(session, version_id=version_id, worker_id=self.worker_id):  # type: ignore[arg-type]
                log.info("version %d: back in the queue (worker shutting down)", version_id)
            session.commit()


class _CancelPoll:
    """The engine's ``should_stop``: the worker is stopping, the user cancelled, or the version is no longer
    this worker's to train (recovery failed it, or it was deleted); the database is read at most once a second."""

    def __init__(self, worker: TrainingWorker, version_id: int):
        self.worker, self.version_id = worker, version_id
        self.cancel_requested = False
        self.given_up: str | None = None  # why the version is no longer ours, once it is not
        self._checked = 0.0

    def __call__(self) -> bool:
        if self.worker.stopping.is_set() or self.given_up:
            return True
        now = time.monotonic()
        if now - self._checked >= CANCEL_POLL_SECONDS:
            self._checked = now
            try:
                with self.worker.platform.sessions() as session:
                    row = session.execute(
                        select(ModelVersion.cancel_requested, ModelVersion.status, ModelVersion.worker_id)
                        .where(ModelVersion.id == self.version_id)
                    ).one_or_none()
            except Exception:  # the database is briefly unreachable: keep training, ask again next time
                log.warning("version %d: could not read the cancel flag", self.version_id, exc_info=True)
                return self.cancel_requested
            if row is None:
                self.given_up = "it was deleted"
            elif row.status != VersionStatus.running or row.worker_id != self.worker.worker_id:
                self.given_up = f"it is {row.status}" + ("" if row.worker_id == self.worker.worker_id else " on another worker")
            else:
                self.cancel_requested = bool(row.cancel_requested)
            if self.given_up:
                log.warning("version %d: %s; stopping its training", self.version_id, self.given_up)
                return True
        return self.cancel_requested
