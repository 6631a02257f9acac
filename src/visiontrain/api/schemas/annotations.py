from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BoxModel(BaseModel):
    """A box around one object, in pixels of the image as displayed (EXIF rotation applied)."""

    model_config = ConfigDict(from_attributes=True)

    concept: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


class AnnotationSet(BaseModel):
    """Send the one field that fits the view's kind: `concept` (classification), `concepts` (tagging,
    `[]` = without concept) or `boxes` (detection, `[]` = no object)."""

    model_config = ConfigDict(extra="forbid")

    concept: str | None = None
    concepts: list[str] | None = None
    boxes: list[BoxModel] | None = None


class AnnotationItem(AnnotationSet):
    image_id: int


class AnnotationBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AnnotationItem] = Field(min_length=1, max_length=10_000)


class AnnotationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    image_id: int
    annotated: bool = Field(description="True once the image's content was stated, even as nothing.")
    split: Literal["train", "val"] | None = Field(description="Fixed side; null: the split setting decides.")
    concepts: list[str] = Field(description="Classification: one name; tagging: zero or more.")
    boxes: list[BoxModel]


class SplitSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_ids: list[int] = Field(min_length=1, max_length=100_000)
    split: Literal["train", "val"] | None = Field(description="null gives the images back to the split setting.")


class SplitResult(BaseModel):
    updated: int
