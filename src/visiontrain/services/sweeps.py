"""Sweeps on the platform: "try N variations" of a model's head settings, run by the workers, the best kept as a version.

Creating a sweep takes the snapshot every trial trains on (the same images and sides a new version
would get, ``services.versions.snapshot``). Workers (``jobs.sweeps``) reserve its trials one at a time
with a conditional UPDATE and run them in an Optuna study kept in the platform's database (several
workers, one study). When the last trial has finished, the worker that closes the sweep queues the best
trial's settings as a normal version of the model, on the same snapshot; a worker trains it (its
features are cached, so it is quick).

Optuna's tables: on PostgreSQL, the platform's database in its own schema ``optuna`` (created by the
migration), so that Optuna's migration record is apart from ours; beside an SQLite database, a file of
its own (``<database>.optuna.db``: SQLite has no schemas within a file).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from visiontrain.config import ServerConfig
from visiontrain.services import versions
from visiontrain.services.errors import Conflict, InvalidInput, NotFound
from visiontrain.settings import TrainingSettings
from visiontrain.settings_check import settings_runnable_here
from visiontrain.store.base import VersionStatus, ViewKind, utcnow
from visiontrain.store.db import normalize_url
from visiontrain.store.models import Model, ModelVersion, Sweep, VersionSample

MAX_TRIALS = 200
SWEEP_KINDS = frozenset({ViewKind.classification, ViewKind.tagging})
OPTUNA_SCHEMA = "optuna"
_storages: dict[str, Any] = {}
_storages_lock = threading.Lock()


def optuna_url(database_url: str) -> tuple[str, dict[str, Any]]:
    """Where Optuna keeps a sweep's trials for the platform's ``database_url``, and the engine's options."""
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() == "postgresql":
        return url.render_as_string(hide_password=False), {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"},
                                                           "pool_pre_ping": True}
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.set(database=f"{url.database}.optuna.db").render_as_string(hide_password=False), {"connect_args": {"timeout": 30}}
    raise InvalidInput(f"sweeps need a PostgreSQL or file SQLite database; the platform's is {url.get_backend_name()}")


def optuna_storage(config: ServerConfig) -> Any:
    """One Optuna RDB storage per database and process (its trials heartbeat, so a dead worker's trial fails)."""
    import optuna

    url, engine_kwargs = optuna_url(config.database_url)
    with _storages_lock:
        if url not in _storages:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                _storages[url] = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=max(1, int(config.heartbeat_seconds)),
                    grace_period=max(2, int(config.stale_after_seconds)),
                )
        return _storages[url]


def study_name(sweep_id: int) -> str:
    return f"visiontrain-sweep-{sweep_id}"


# --- create, read, cancel


def create_sweep(session: Session, *, model: Model, settings: TrainingSettings, trials: int, seed: int | None = None) -> Sweep:
    """Queue ``trials`` head configurations of ``model`` over ``settings`` (the base: what is not searched)."""
    kind = ViewKind(model.view.kind)
    if kind not in SWEEP_KINDS:
        raise InvalidInput(
            f"sweeps try head settings on cached pooled features; a {kind.value} model trains a whole detector on feature "
            "maps, which has no such cache: train versions of it instead", loc=("path", "model_id"))
    if not 1 <= trials <= MAX_TRIALS:
        raise InvalidInput(f"trials must be between 1 and {MAX_TRIALS} (got {trials})", loc=("body", "trials"))
    settings = settings.with_task_defaults(kind.value)
    if settings.weights_path is not None:
        raise InvalidInput("weights_path names a file on the server and cannot be set through the API",
                           loc=("body", "settings", "weights_path"))
    problems = settings_runnable_here(settings, kind.value)
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), loc=("body", "settings", problems[0].field))
    samples, data_split = versions.snapshot(session, view=model.view, concepts=[c.name for c in model.concepts],
                                            settings=settings, persist=True)
    sweep = Sweep(
        model_id=model.id, trials=trials, trials_started=0, workers_joined=0, seed=settings.seed if seed is None else seed,
        settings=settings.model_dump(mode="json"), status=VersionStatus.queued.value, study_name="", data_split=data_split,
        snapshot=[{"image_id": s.image_id, "sha256": s.sha256, "blob_key": s.blob_key, "image_name": s.image_name,
                   "annotation": s.annotation, "split": s.split} for s in samples],
    )
    session.add(sweep)
    session.flush()
    sweep.study_name = study_name(sweep.id)
    session.flush()
    return sweep


def get_sweep(session: Session, *, organization_id: int, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.model.view.project.organization_id != organization_id:
        raise NotFound(f"sweep {sweep_id} not found")
    return sweep


def list_sweeps(session: Session, *, model: Model) -> list[Sweep]:
    return list(session.scalars(select(Sweep).where(Sweep.model_id == model.id).order_by(Sweep.id.desc())))


def cancel_sweep(session: Session, *, sweep: Sweep) -> Sweep:
    """No more trials start; trials running finish; the sweep is cancelled (no best version)."""
    if VersionStatus(sweep.status).finished:
        raise Conflict(f"sweep {sweep.id} has already {sweep.status}; there is nothing to cancel")
    session.execute(
        update(Sweep).where(Sweep.id == sweep.id, Sweep.status.in_([VersionStatus.queued, VersionStatus.running]))
        .values(status=VersionStatus.cancelled.value, cancel_requested=True, finished_at=utcnow())
    )
    session.flush()
    session.refresh(sweep)
    return sweep


def trials_of(config: ServerConfig, sweep: Sweep) -> list[dict[str, Any]]:
    """The sweep's trials so far, ranked (``training.sweep.trial_rows``); none before a worker started it."""
    import optuna

    from visiontrain.training.sweep import trial_rows

    try:
        study = optuna.load_study(study_name=sweep.study_name, storage=optuna_storage(config))
    except KeyError:  # no worker has opened the study yet
        return []
    return trial_rows(study, sweep.model.view.kind)


# --- what the workers call


_LIVE = (VersionStatus.queued, VersionStatus.running)


def next_sweep(session: Session) -> int | None:
    """The oldest sweep with trials left to take (nothing is reserved: the worker prepares its features first)."""
    return session.scalar(
        select(Sweep.id).where(Sweep.status.in_(_LIVE), Sweep.trials_started < Sweep.trials).order_by(Sweep.id).limit(1)
    )


def claim_trial(session: Session, *, sweep_id: int) -> bool:
    """Reserve one trial of the sweep (a conditional UPDATE: any number of workers share it, never more than its trials)."""
    won = session.execute(
        update(Sweep).where(Sweep.id == sweep_id, Sweep.status.in_(_LIVE), Sweep.trials_started < Sweep.trials)
        .values(trials_started=Sweep.trials_started + 1, status=VersionStatus.running.value)
    ).rowcount
    if won == 1:
        session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.started_at.is_(None)).values(started_at=utcnow()))
    session.commit()
    return won == 1


def join(session: Session, *, sweep_id: int) -> int:
    """This worker's rank among those that have joined the sweep (1 for the first), counted atomically."""
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(workers_joined=Sweep.workers_joined + 1))
    rank = session.scalar(select(Sweep.workers_joined).where(Sweep.id == sweep_id)) or 1
    session.commit()
    return rank


def finished_sweeps(session: Session, *, sweep_ids: list[int]) -> list[int]:
    """Those of ``sweep_ids`` that have ended (or were deleted)."""
    live = set(session.scalars(select(Sweep.id).where(Sweep.id.in_(sweep_ids), Sweep.status.in_(_LIVE))))
    return [i for i in sweep_ids if i not in live]


def open_sweeps(session: Session) -> list[int]:
    """Running sweeps whose every trial has been taken: the ones that may be ready to close."""
    return list(session.scalars(select(Sweep.id).where(Sweep.status == VersionStatus.running, Sweep.trials_started >= Sweep.trials)))


def fail_sweep(session: Session, *, sweep_id: int, error: str) -> bool:
    done = session.execute(
        update(Sweep).where(Sweep.id == sweep_id, Sweep.status.in_(_LIVE))
        .values(status=VersionStatus.failed.value, error=error, finished_at=utcnow())
    ).rowcount
    session.commit()
    return done == 1


def close_sweep(session: Session, *, sweep_id: int, rows: list[dict[str, Any]], best: TrainingSettings | None) -> ModelVersion | None:
    """Once every trial has finished: the sweep succeeds and its best trial is queued as a version (one
    worker wins the conditional UPDATE; the others change nothing). No completed trial: it fails."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.status != VersionStatus.running:
        return None
    if best is None:
        fail_sweep(session, sweep_id=sweep_id, error=f"none of the {len(rows)} trials completed (see each trial's state)")
        return None
    won = session.execute(
        update(Sweep).where(Sweep.id == sweep_id, Sweep.status == VersionStatus.running)
        .values(status=VersionStatus.succeeded.value, finished_at=utcnow())
    ).rowcount
    if won != 1:
        session.rollback()
        return None
    version = ModelVersion(
        model_id=sweep.model_id, name=_best_name(session, sweep), settings=best.model_dump(mode="json"),
        status=VersionStatus.queued.value, sample_count=len(sweep.snapshot), data_split=sweep.data_split,
    )
    session.add(version)
    session.flush()
    session.add_all(VersionSample(version_id=version.id, **row) for row in sweep.snapshot)
    sweep.best_version_id = version.id
    session.commit()
    return version


def _best_name(session: Session, sweep: Sweep) -> str:
    taken = set(session.scalars(select(ModelVersion.name).where(ModelVersion.model_id == sweep.model_id)))
    name, n = f"sweep {sweep.id} best", 2
    while name in taken:
        name, n = f"sweep {sweep.id} best ({n})", n + 1
    return name


def sweep_dir(config: ServerConfig, sweep_id: int, worker_id: str) -> Path:
    return config.runs_dir / f"sweep-{sweep_id}-{worker_id[:8]}"
