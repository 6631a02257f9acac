"""The job queue: queued versions claimed atomically, worker heartbeats, recovery from dead workers.

A version's status is its job state. Claiming is one conditional UPDATE (``WHERE status = 'queued'``)
whose row count says who won, so two workers can never train the same version; on PostgreSQL the
candidate is first picked with ``FOR UPDATE SKIP LOCKED`` so concurrent workers do not queue on
the same row.

Each worker registers what it can run (:class:`Capabilities`: N GPUs, or its CPU's cores) and each
version records what it needs (:func:`requirements`, from its settings at creation), and a worker
claims only versions that fit it (:func:`fits`): a CPU worker never takes one that asks for a GPU, a
1-GPU worker never one that asks for 2 devices; ``auto`` fits any worker with enough devices and runs
on what that worker has.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, or_, select, update
from sqlalchemy.orm import Session

from visiontrain.store.base import VersionStatus, utcnow
from visiontrain.store.models import ModelVersion, VersionMetric, Worker
from visiontrain.store.training import version_requirements

CPU, GPU, ANY = "cpu", "gpu", "any"


@dataclass(frozen=True)
class Capabilities:
    """What one worker can run: ``devices`` GPUs (a GPU worker), or its CPU with ``devices`` cores (a CPU
    worker: on the CPU each device of a data-parallel run is a process, at most one per core)."""

    accelerator: str = CPU
    devices: int = 1
    name: str | None = None

    def __post_init__(self) -> None:
        if self.accelerator not in (CPU, GPU):
            raise ValueError(f"a worker's accelerator is cpu or gpu, not {self.accelerator!r}")
        if self.devices < 1:
            raise ValueError(f"a {self.accelerator} worker needs at least 1 device, not {self.devices}")

    @classmethod
    def of_this_machine(cls, *, gpus: int | None = None, name: str | None = None) -> "Capabilities":
        """The GPUs this process sees (``CUDA_VISIBLE_DEVICES`` narrows them), at most ``gpus`` of them
        (0: a CPU worker even on a GPU machine); without a GPU, a CPU worker with the cores it may use."""
        from visiontrain.settings_check import gpu_count

        found = gpu_count()
        if gpus is not None and gpus > found:
            raise ValueError(f"asked for {gpus} GPU{'s' if gpus != 1 else ''} but this machine has {found}")
        count = found if gpus is None else gpus
        return cls(GPU, count, name) if count > 0 else cls(CPU, len(os.sched_getaffinity(0)) or 1, name)

    def describe(self) -> str:
        if self.accelerator == CPU:
            return f"CPU, {self.devices} core{'s' if self.devices != 1 else ''}"
        return f"{self.devices} GPU{'s' if self.devices != 1 else ''}"


def requirements(settings: Mapping[str, Any]) -> tuple[str, int]:
    """What a version with these settings needs, as (accelerator, devices): see
    :func:`visiontrain.store.training.version_requirements` (the rule lives with the columns it fills)."""
    return version_requirements(dict(settings))


def fits(capabilities: Capabilities) -> ColumnElement[bool]:
    """The SQL condition "this worker can run the version" (the same rule as :func:`can_run`)."""
    needs, devices = ModelVersion.needs_accelerator, ModelVersion.needs_devices
    if capabilities.accelerator == GPU:
        # Its GPUs for gpu and auto; the CPU only in one process (its cores are not counted).
        return or_(and_(needs.in_((GPU, ANY)), devices <= capabilities.devices), and_(needs == CPU, devices == 1))
    return and_(needs.in_((CPU, ANY)), devices <= capabilities.devices)


def can_run(capabilities: Capabilities, needs: tuple[str, int]) -> bool:
    accelerator, devices = needs
    if capabilities.accelerator == GPU:
        return (accelerator in (GPU, ANY) and devices <= capabilities.devices) or (accelerator == CPU and devices == 1)
    return accelerator in (CPU, ANY) and devices <= capabilities.devices


def describe_needs(needs: tuple[str, int]) -> str:
    accelerator, devices = needs
    gpus = f"{devices} GPU{'s' if devices != 1 else ''}"
    cores = "a CPU" if devices == 1 else f"{devices} CPU cores"
    return {GPU: gpus, CPU: cores, ANY: f"{gpus} or {cores}" if devices > 1 else "a CPU or a GPU"}[accelerator]


def capabilities_of(worker: Worker) -> Capabilities:
    return Capabilities(worker.accelerator, worker.devices, worker.name)


def register_worker(session: Session, capabilities: Capabilities | None = None) -> Worker:
    """Record a worker and what it can run (default: this machine's GPUs, or its CPU)."""
    capabilities = capabilities or Capabilities.of_this_machine()
    worker = Worker(id=str(uuid.uuid4()), hostname=socket.gethostname(), pid=os.getpid(), name=capabilities.name,
                    accelerator=capabilities.accelerator, devices=capabilities.devices)
    session.add(worker)
    session.flush()
    return worker


def live_workers(session: Session, *, stale_after_seconds: float) -> list[Worker]:
    """Workers that have not stopped and whose heartbeat is younger than ``stale_after_seconds``."""
    since = utcnow() - timedelta(seconds=stale_after_seconds)
    return list(session.scalars(
        select(Worker).where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= since).order_by(Worker.started_at)
    ))


def waiting_for(session: Session, *, needs: tuple[str, int], stale_after_seconds: float) -> str | None:
    """Why a queued version with these needs is not taken, when no live worker can run it (None: one can)."""
    workers = live_workers(session, stale_after_seconds=stale_after_seconds)
    if any(can_run(capabilities_of(w), needs) for w in workers):
        return None
    wanted = f"waiting for a worker with {describe_needs(needs)}"
    if not workers:
        return f"{wanted}: no worker is running (start one with `visiontrain worker`)"
    seen = ", ".join(f"{w.name or w.hostname} ({capabilities_of(w).describe()})" for w in workers)
    hint = " (`visiontrain worker --gpus N` on a GPU machine)" if needs[0] == GPU else ""
    return f"{wanted}{hint}; the running workers have: {seen}"


def beat(session: Session, *, worker_id: str) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))


def mark_stopped(session: Session, *, worker_id: str) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=utcnow()))


def claim_next(session: Session, *, worker_id: str) -> int | None:
    """Take the oldest queued version this worker can run (its registered capabilities); its id, or None
    when there is none."""
    worker = session.get(Worker, worker_id)
    fitting = fits(capabilities_of(worker)) if worker is not None else false()
    for _ in range(20):  # another worker may win a candidate: try the next one
        candidate = (select(ModelVersion.id).where(ModelVersion.status == VersionStatus.queued, fitting)
                     .order_by(ModelVersion.id).limit(1))
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
