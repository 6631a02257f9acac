"""Sweeps: many head configurations of one model tried on one snapshot, run by the workers together.

The trials themselves live in Optuna's own tables (``services.sweeps.optuna_storage``: the platform's
PostgreSQL database in the ``optuna`` schema, or a file beside an SQLite database); this row says what
the sweep is (its model, base settings, number of trials, seed, data snapshot), how many trials the
workers have taken, its status, and the version the best trial became.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from visiontrain.store.base import Base, UTCDateTime, VersionStatus, enum_column, utcnow
from visiontrain.store.training import Model, ModelVersion


class Sweep(Base):
    """A sweep of a model; ``status`` is its job state (queued, running, then succeeded, failed or cancelled)."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    trials: Mapped[int] = mapped_column(Integer)
    # Trials the workers have reserved (a conditional UPDATE each): never more than ``trials``.
    trials_started: Mapped[int] = mapped_column(Integer, default=0)
    # Workers that have joined: each samples with seed + (its rank - 1), so two never propose the same trials.
    workers_joined: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(BigInteger)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # the base: TrainingSettings.model_dump(mode="json")
    status: Mapped[str] = mapped_column(enum_column(VersionStatus), default=VersionStatus.queued, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    study_name: Mapped[str] = mapped_column(String(100))
    # The images, labels and sides every trial (and the best version) trains on: VersionSample's columns, as rows.
    snapshot: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    data_split: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    best_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    model: Mapped[Model] = relationship()
    best_version: Mapped[ModelVersion | None] = relationship()
