from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from visiontrain.api.schemas.common import Name, Public
from visiontrain.settings import TrainingSettings

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ModelCreate(BaseModel):
    name: Name
    concepts: list[Name] | None = Field(None, max_length=10_000, description="Concept names of the view (default: all of them).")


class ModelUpdate(BaseModel):
    name: Name


class ModelPublic(Public):
    id: int
    view_id: int
    name: str
    concepts: list[str]
    created_at: datetime
    version_count: int = 0


# The settings a request sends: every field of TrainingSettings with its type, bounds and help (so a bad
# value is a 422 naming the field), without the rules that relate fields to each other. Those are
# checked once the view's task is known, with that task's defaults filled in (a detection model's
# fine-tuning rate is judged against detection's learning rate, not the shared default's).
SettingsInput = create_model(
    "SettingsInput",
    __config__=TrainingSettings.model_config,
    __doc__="Training settings, each optional: a field left out takes the default of the view's task.",
    **{name: (info.annotation, info) for name, info in TrainingSettings.model_fields.items()},
)


class VersionCreate(BaseModel):
    """`settings` is partial: every field left out takes its task's default (GET /api/v1/settings/schema?task=...)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(None, description="Default: v1, v2, ...")
    settings: SettingsInput = Field(default_factory=SettingsInput)  # type: ignore[valid-type]

    def settings_for(self, task: str) -> TrainingSettings:
        """The whole settings for ``task``: what was sent over the task's defaults, validated together."""
        return TrainingSettings.for_task(task, self.settings.model_dump(exclude_unset=True))


class Headline(BaseModel):
    name: str
    value: float


class VersionNeeds(BaseModel):
    accelerator: Literal["any", "cpu", "gpu"] = Field(description="any: a worker's GPU or its CPU (accelerator auto, one device).")
    devices: int = Field(description="How many devices: GPUs, or on the CPU processes (one per core).")


class VersionSummary(Public):
    """What a list shows about a version."""

    id: int
    model_id: int
    name: str
    status: Status
    error: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    sample_count: int
    worker_id: str | None = Field(None, description="The worker that trains or trained it (its id is in that worker's log); "
                                  "null while queued.")
    headline: Headline | None = None
    needs: VersionNeeds = Field(description="What a worker needs to claim it, from its settings.")
    waiting_for: str | None = Field(
        None, description="Queued and no running worker can take it: what it waits for (e.g. a worker with 2 GPUs) and "
        "what the running workers have; null otherwise."
    )


class ArtifactPublic(Public):
    kind: str
    size_bytes: int
    url: str


class VersionPublic(VersionSummary):
    settings: dict[str, Any]
    timings: dict[str, Any] | None
    best_epoch: int | None
    best_stage: str | None
    best_metrics: dict[str, Any] | None
    summary: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    data_split: dict[str, Any] | None = Field(
        None, description="The split it was judged on: source (view or fixed), validation_split, seed, generation, "
        "train_images, validation_images, validation_digest (equal digests: the same validation images), warnings."
    )
    artifacts: list[ArtifactPublic] = Field(default_factory=list)


class SamplePublic(Public):
    image_id: int | None = Field(description="null when the image was deleted since (the version keeps its copy).")
    sha256: str
    image_name: str
    annotation: Any
    split: Literal["train", "val", "test"] | None


class MetricPublic(Public):
    id: int = Field(description="Increasing; pass the last one as `after_id` to get only newer rows.")
    kind: str = Field(description="batch, epoch, stage, features or status (see visiontrain.training.events).")
    stage: str | None
    epoch: int | None
    step: int | None
    time: float = Field(description="Seconds since the run started.")
    data: dict[str, Any] = Field(description="The event exactly as the engine emitted it.")


class LabelProbability(BaseModel):
    label: str
    probability: float


class TagProbability(LabelProbability):
    """Tagging: every concept, whether it is on (probability at or above its threshold) and that threshold."""

    on: bool
    threshold: float


class BoxCorners(BaseModel):
    x_min: float
    y_min: float
    x_max: float
    y_max: float


class DetectedBox(BaseModel):
    """Detection: one box scoring at least the model's score threshold, in pixels of the image (EXIF rotation applied)."""

    label: str
    score: float
    box: BoxCorners


class Prediction(BaseModel):
    file: str = Field(description="The uploaded file's name.")
    predictions: list[TagProbability | LabelProbability | DetectedBox] = Field(
        description="Most probable first: classification, at most top_k labels; tagging, every concept with `on` and "
        "`threshold`; detection, every box scoring at least the model's score threshold (`top_k` does not apply)."
    )
    width: int | None = Field(None, description="Detection: the image's width in pixels (EXIF rotation applied), the boxes' frame.")
    height: int | None = Field(None, description="Detection: the image's height in pixels.")


class SettingsSchema(BaseModel):
    """Without a task: every setting and the shared defaults. With ``?task=``: that task's form (the
    three last fields are present only then)."""

    json_schema: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    groups: dict[str, list[str]]
    defaults: dict[str, Any]
    task: str | None = Field(None, description="The task asked for.")
    task_defaults: dict[str, Any] | None = Field(
        None, description="The settings whose default differs for this task, with the task's value (TASK_DEFAULTS)."
    )
    not_applicable: list[str] | None = Field(
        None, description="Settings this task ignores (left out of `groups`; accepted and stored, never used)."
    )

    model_config = ConfigDict(populate_by_name=True)
