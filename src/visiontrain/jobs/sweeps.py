"""Sweep jobs: a worker with no version to train takes one trial of a sweep, runs it, and closes the sweep after its last.

Several workers share a sweep: each reserves trials one at a time (``services.sweeps.claim_trial``)
and runs them in the sweep's Optuna study in the platform's database. A worker prepares a sweep's data
and features once (``training.sweep.Sweep``: from the feature cache after the first) and keeps them while
it takes more of its trials. Versions come first: the worker looks for a trial only when no version is
queued, so the best version of a finished sweep is trained before more trials start.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from visiontrain.data.dataset import DatasetSpec
from visiontrain.data.errors import DataError
from visiontrain.jobs import queue
from visiontrain.services import sweeps as service
from visiontrain.settings import SettingsError, TrainingSettings
from visiontrain.store.base import Split, VersionStatus
from visiontrain.store.models import Sweep

if TYPE_CHECKING:
    from visiontrain.jobs.worker import TrainingWorker

log = logging.getLogger("visiontrain.worker")
CANCEL_POLL_SECONDS = 1.0


@dataclass
class _Prepared:
    sweep: Any  # training.sweep.Sweep
    study: Any  # optuna.Study
    task: str
    base: TrainingSettings


class SweepJobs:
    def __init__(self, worker: TrainingWorker):
        self.worker = worker
        self.prepared: dict[int, _Prepared] = {}

    @property
    def platform(self):  # type: ignore[no-untyped-def]
        return self.worker.platform

    def run_one(self) -> bool:
        """Run one trial of the oldest sweep with trials left; False when there is none (sweeps ready are closed)."""
        with self.platform.sessions() as session:
            sweep_id = self._next_fitting_sweep(session)
        if sweep_id is None:
            self.close_ready()
            return False
        try:
            # Data and features first, then the reservation: a worker that dies while it computes features
            # holds no trial, so the sweep can still be finished by the others.
            prepared = self._prepare(sweep_id)
            with self.platform.sessions() as session:
                claimed = service.claim_trial(session, sweep_id=sweep_id)
            if not claimed:  # the others took the last trials meanwhile
                self.close(sweep_id)
                return True
            trial = prepared.sweep.run_trial(prepared.study)
            if trial is not None:
                log.info("sweep %d: trial %d %s", sweep_id, trial.number, trial.state.name.lower())
        except (DataError, SettingsError) as exc:
            self._fail(sweep_id, str(exc))
            return True
        except Exception as exc:
            log.error("sweep %d failed:\n%s", sweep_id, traceback.format_exc())
            self._fail(sweep_id, f"{type(exc).__name__}: {exc}")
            return True
        self.close(sweep_id)
        return True

    def close_ready(self) -> None:
        """Close every running sweep whose trials have all been taken and have finished (a dead worker's
        trial fails once its heartbeat is stale)."""
        with self.platform.sessions() as session:
            ready = service.open_sweeps(session)
            ended = service.finished_sweeps(session, sweep_ids=list(self.prepared)) if self.prepared else []
        for sweep_id in ended:  # cancelled or finished elsewhere: its features leave memory
            self._forget(sweep_id)
        for sweep_id in ready:
            try:
                self.close(sweep_id)
            except Exception:
                log.exception("sweep %d: could not be closed", sweep_id)

    def close(self, sweep_id: int) -> None:
        import optuna

        from visiontrain.training.sweep import best_settings, trial_rows

        with self.platform.sessions() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None or VersionStatus(sweep.status).finished:
                self._forget(sweep_id)
                return
            if sweep.trials_started < sweep.trials:
                return
            task, base = sweep.model.view.kind, TrainingSettings(**sweep.settings)
            try:
                study = optuna.load_study(study_name=sweep.study_name, storage=service.optuna_storage(self.platform.config))
            except KeyError:
                return
            with warnings.catch_warnings():  # experimental in name since Optuna 2.9; the heartbeat's own clean-up
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            if len(trials) < sweep.trials or not all(t.state.is_finished() for t in trials):
                return
            rows = trial_rows(study, task)
            version = service.close_sweep(session, sweep_id=sweep_id, rows=rows, best=best_settings(rows, base, task))
        if version is not None:
            log.info("sweep %d: finished; its best trial is queued as version %d", sweep_id, version.id)
        self._forget(sweep_id)

    # --- helpers

    def _next_fitting_sweep(self, session: Session) -> int | None:
        """The oldest sweep with trials left that this worker can run (the versions' rule, on the sweep's settings)."""
        rows = session.execute(
            select(Sweep.id, Sweep.settings).where(Sweep.status.in_((VersionStatus.queued, VersionStatus.running)), Sweep.trials_started < Sweep.trials)
            .order_by(Sweep.id)
        ).all()
        return next((sweep_id for sweep_id, settings in rows
                     if queue.can_run(self.worker.capabilities, queue.requirements(settings or {}))), None)

    def _prepare(self, sweep_id: int) -> _Prepared:
        from visiontrain.training.sweep import Sweep as EngineSweep
        from visiontrain.training.sweep import make_study

        if sweep_id in self.prepared:
            return self.prepared[sweep_id]
        with self.platform.sessions() as session:
            row = session.get(Sweep, sweep_id)
            assert row is not None
            task = row.model.view.kind
            classes = [c.name for c in row.model.concepts]
            base = self.worker._on_this_worker(TrainingSettings(**row.settings))
            # The first worker on the sweep samples with its seed (a one-worker sweep tries what `visiontrain sweep
            # --seed` would); each worker joining later with another, so two never propose the same trials.
            name, snapshot, first_seed = row.study_name, list(row.snapshot), row.seed
            warnings = list((row.data_split or {}).get("warnings", []))
            seed = (first_seed + service.join(session, sweep_id=sweep_id) - 1) % (2**32)
        from visiontrain.jobs.worker import _sample, fetch_images

        out = service.sweep_dir(self.platform.config, sweep_id, self.worker.worker_id or "worker")
        # In the sweep's directory: the files last as long as its trials (removed with it).
        files = fetch_images(self.platform.blobs, [(e["blob_key"], e["image_name"]) for e in snapshot],
                             out / "images")
        samples = {side: [_sample(file, e["annotation"]) for e, file in zip(snapshot, files) if e["split"] == side]
                   for side in (Split.train, Split.val)}
        spec = DatasetSpec(classes=classes, train=samples[Split.train], val=samples[Split.val], source=f"sweep {sweep_id}",
                           task=task, warnings=warnings)
        engine_sweep = EngineSweep(base, spec, out, cache_dir=self.worker._cache_dir(), should_stop=_StopPoll(self, sweep_id))
        study = make_study(task, seed=seed, storage=service.optuna_storage(self.platform.config), study_name=name,
                           load_if_exists=True)
        self.prepared[sweep_id] = _Prepared(engine_sweep, study, task, base)
        return self.prepared[sweep_id]

    def _fail(self, sweep_id: int, error: str) -> None:
        with self.platform.sessions() as session:
            if service.fail_sweep(session, sweep_id=sweep_id, error=error):
                log.warning("sweep %d failed: %s", sweep_id, error)
        self._forget(sweep_id)

    def _forget(self, sweep_id: int) -> None:
        prepared = self.prepared.pop(sweep_id, None)
        if prepared is not None:
            shutil.rmtree(prepared.sweep.out_dir, ignore_errors=True)


class _StopPoll:
    """A trial's ``should_stop``: the worker is stopping, or the sweep was cancelled (read at most once a second)."""

    def __init__(self, jobs: SweepJobs, sweep_id: int):
        self.jobs, self.sweep_id = jobs, sweep_id
        self.cancelled = False
        self._checked = 0.0

    def __call__(self) -> bool:
        if self.jobs.worker.stopping.is_set() or self.cancelled:
            return True
        now = time.monotonic()
        if now - self._checked >= CANCEL_POLL_SECONDS:
            self._checked = now
            try:
                with self.jobs.platform.sessions() as session:
                    row = session.get(Sweep, self.sweep_id)
                    self.cancelled = row is None or row.status == VersionStatus.cancelled
            except Exception:
                log.warning("sweep %d: could not read its status", self.sweep_id, exc_info=True)
        return self.cancelled

