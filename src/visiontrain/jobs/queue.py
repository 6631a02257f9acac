"""The job queue: queued versions claimed atomically, worker heartbeats, recovery from dead workers.

A version's status is its job state. Claiming is one conditional UPDATE (``WHERE status = 'queued'``)
whose row count says who won, so two workers can never train the same version; on PostgreSQL the
candidate is first picked with ``FOR UPDATE SKIP LOCKED`` so concurrent workers do not queue on
the same row.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from visiontrain.store.base import VersionStatus, utcnow
from visiontrain.store.models import ModelVersion, VersionMetric, Worker


def register_worker(session: Session) -> Worker:
    worker = Worker(id=str(uuid.uuid4()), hostname=socket.gethostname(), pid=os.getpid())
    session.add(worker)
    session.flush()
    return worker


def beat(session: Session, *, worker_id: str) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))


def mark_stopped(session: Session, *, worker_id: str) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=utcnow()))


def claim_next(session: Session, *, worker_id: str) -> int | None:
    """Take the oldest queued version for this worker; its id, or None when the queue is empty."""
    for _ in range(20):  # another worker may win a candidate: try the next one
        candidate = select(ModelVersion.id).where(ModelVersion.status == VersionStatus.queued).order_by(ModelVersion.id).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        version_id = session.scalar(candidate)
        if version_id is None:
            return None
        now = utcnow()
        won = session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version_id, ModelVersion.status == VersionStatus.queued)
            .values(status=VersionStatus.running.value, worker_id=worker_id, started_at=now, finished_at=None, error=None)
        ).rowcount
        session.commit()
        if won == 1:
            return version_id
    return None


def requeue(session: Session, *, version_id: int, worker_id: str) -> bool:
    """Give a running version back to the queue (its worker is shutting down); its partial metrics go."""
    moved = session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == version_id, ModelVersion.status == VersionStatus.running, ModelVersion.worker_id == worker_id)
        .values(status=VersionStatus.queued.value, worker_id=None, started_at=None)
    ).rowcount
    if moved:
        session.execute(delete(VersionMetric).where(VersionMetric.version_id == version_id))
    return bool(moved)


def recover_stale(session: Session, *, stale_after_seconds: float, current_worker_id: str | None = None) -> list[int]:
    """Mark failed every running version whose worker is gone; returns their ids.

    Gone: the worker row is missing or says it stopped, or its heartbeat is older than
    ``stale_after_seconds``. Heartbeats only: a process id says nothing across PID namespaces
    (two containers share a hostname and a pid, and each sees none of the other's processes).
    """
    now = utcnow()
    failed = []
    rows = session.execute(
        select(ModelVersion.id, ModelVersion.worker_id, Worker)
        .outerjoin(Worker, Worker.id == ModelVersion.worker_id)
        .where(ModelVersion.status == VersionStatus.running)
    ).all()
    for version_id, worker_id, worker in rows:
        if worker_id is not None and worker_id == current_worker_id:
            continue
        reason = None
        if worker is None:
            reason = "its worker is no longer registered"
        elif worker.stopped_at is not None:
            reason = f"worker {worker.hostname}:{worker.pid} exited while training"
        elif now - worker.heartbeat_at > timedelta(seconds=stale_after_seconds):
            silent = int((now - worker.heartbeat_at).total_seconds())
            reason = f"worker {worker.hostname}:{worker.pid} has been silent for {silent} s"
        if reason is None:
            continue
        done = session.execute(
            update(ModelVersion)
            .where(
                ModelVersion.id == version_id,
                ModelVersion.status == VersionStatus.running,
                ModelVersion.worker_id.is_(worker_id) if worker_id is None else ModelVersion.worker_id == worker_id,
            )
            .values(
                status=VersionStatus.failed.value,
                error=f"worker stopped unexpectedly ({reason}); create a new version to train again",
                finished_at=now,
            )
        ).rowcount
        if done:
            failed.append(version_id)
    session.commit()
    return failed
