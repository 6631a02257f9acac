"""Sweeps: "try N variations" of a model's head settings on cached features."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from visiontrain.api.schemas.common import Public
from visiontrain.api.schemas.training import SettingsInput, Status
from visiontrain.services.sweeps import MAX_TRIALS
from visiontrain.settings import MAX_SEED, TrainingSettings


class SweepCreate(BaseModel):
    """`settings` is the base, partial as for a version: what the sweep does not search (epochs, backbone, ...)."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(20, ge=1, le=MAX_TRIALS, description="Head configurations to try.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Seed of the search (default: the settings' seed).")
    settings: SettingsInput = Field(default_factory=SettingsInput)  # type: ignore[valid-type]

    def settings_for(self, task: str) -> TrainingSettings:
        return TrainingSettings.for_task(task, self.settings.model_dump(exclude_unset=True))


class SweepPublic(Public):
    id: int
    model_id: int
    status: Status
    error: str | None
    trials: int = Field(description="Trials asked for.")
    trials_started: int = Field(description="Trials the workers have taken so far.")
    seed: int
    settings: dict[str, Any] = Field(description="The base settings (whole); each trial changes the searched ones.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    best_version_id: int | None = Field(description="The version the best trial became (queued when the sweep finished).")
    monitor: str = Field(description="The validation metric trials are ranked by (val_accuracy, val_map).")
    searched: list[str] = Field(description="The settings the sweep searches (each trial's values are in `results`).")
    results: list[dict[str, Any]] = Field(
        default_factory=list, description="The trials so far, ranked: rank, number, state (complete, pruned, failed, running), "
        "the metric, val_loss, epochs, best_epoch, seconds and each searched setting (as in the CLI's trials.csv).")
