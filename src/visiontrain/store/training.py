"""Models (a named concept set in a view), their versions (one training run each), metrics, artifacts, workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from visiontrain.store.base import Base, Split, UTCDateTime, VersionStatus, enum_column, utcnow
from visiontrain.store.projects import Concept, View

model_concepts = Table(
    "model_concepts",
    Base.metadata,
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    # No cascade: removing a concept would silently turn the model into a different one (checked at
    # the end of the statement, so deleting a whole view still cascades through its models first).
    Column("concept_id", ForeignKey("concepts.id"), primary_key=True),
)


class Model(Base):
    """A named set of concepts in a view; its concepts never change (another set is another model)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("view_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    view_id: Mapped[int] = mapped_column(ForeignKey("views.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    view: Mapped[View] = relationship()
    concepts: Mapped[list[Concept]] = relationship(secondary=model_concepts, order_by=Concept.name)
    versions: Mapped[list["ModelVersion"]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True, order_by="ModelVersion.id"
    )


class Worker(Base):
    """A worker process; its heartbeat tells whether the versions it runs are still alive, its capabilities
    which versions it may claim (``jobs.queue.fits``)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(200))  # the operator's name for it (`visiontrain worker --name`)
    accelerator: Mapped[str] = mapped_column(String(8), default="cpu", server_default="cpu")  # cpu or gpu
    devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # GPUs it trains on (a CPU worker: 1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def version_requirements(settings: dict[str, Any]) -> tuple[str, int]:
    """What a version with these settings needs from a worker, as (accelerator, devices): the accelerator
    as set (``any`` for auto: a worker's GPUs, or its CPU) and how many devices (auto: one; on the CPU a
    device is a process)."""
    accelerator, devices = str(settings.get("accelerator", "auto")), settings.get("devices", "auto")
    count = devices if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1 else 1
    return {"cpu": "cpu", "gpu": "gpu"}.get(accelerator, "any"), count


def _needs_of_insert(context: Any) -> tuple[str, int]:
    return version_requirements(context.get_current_parameters().get("settings") or {})


class ModelVersion(Base):
    """One training run of a model: settings, the exact data it saw, its status, metrics and results.

    The version's status is also its job state: a worker claims a queued version atomically.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # TrainingSettings.model_dump(mode="json")
    status: Mapped[str] = mapped_column(enum_column(VersionStatus), default=VersionStatus.queued, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sample_count: Mapped[int] = mapped_column(Integer, default=0)
    # What a worker needs to claim it, from the settings at creation (``jobs.queue.requirements``): the
    # accelerator (any, cpu, gpu) and how many devices.
    # Computed on insert when not given, so every way a version is made (a sweep's best, too) records them.
    needs_accelerator: Mapped[str] = mapped_column(
        String(8), default=lambda context: _needs_of_insert(context)[0], server_default="any", index=True
    )
    needs_devices: Mapped[int] = mapped_column(
        Integer, default=lambda context: _needs_of_insert(context)[1], server_default="1", index=True
    )
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_stage: Mapped[str | None] = mapped_column(String(32))
    best_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Which validation images it is judged on: the view's split fraction, seed and generation, the
    # digest of its validation images (equal digests: comparable metrics) and the split's warnings.
    data_split: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    model: Mapped[Model] = relationship(back_populates="versions")
    worker: Mapped[Worker | None] = relationship()
    artifacts: Mapped[list["Artifact"]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    @property
    def needs(self) -> dict[str, Any]:
        """What a worker needs to run it: ``{"accelerator": any|cpu|gpu, "devices": N}``."""
        return {"accelerator": self.needs_accelerator, "devices": self.needs_devices}

    @property
    def waiting_for(self) -> str | None:
        """Queued and no running worker can take it: what it waits for (``services.versions.waiting_reason``)."""
        from sqlalchemy.orm import object_session

        from visiontrain.services.versions import waiting_reason

        session = object_session(self)
        return waiting_reason(session, version=self) if session is not None else None


class VersionSample(Base):
    """The snapshot: one image and its annotation exactly as the version trained on them.

    Self-contained (bytes key and label copied), so later edits or deletions change nothing. One row
    per image. ``annotation``: the concept name (classification), the list of the image's concept
    names (tagging; ``[]``: without concept, an all-negative example) or boxes (detection).
    """

    __tablename__ = "version_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    image_name: Mapped[str] = mapped_column(String(500))
    annotation: Mapped[Any] = mapped_column(JSON)
    split: Mapped[str | None] = mapped_column(enum_column(Split))


class VersionMetric(Base):
    """One training event (batch, epoch, stage, features, status) as the engine emitted it."""

    __tablename__ = "version_metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    epoch: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    time: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Artifact(Base):
    """A file a version produced, kept in blob storage (best checkpoint, ONNX export)."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("version_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    blob_key: Mapped[str] = mapped_column(String(300))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
