from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from visiontrain.api.schemas.common import Id, Name

Coordinate = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


class BoxModel(BaseModel):
    """A box around one object, in pixels of the image as displayed (EXIF rotation applied)."""

    model_config = ConfigDict(from_attributes=True)

    concept: Name
    x_min: Coordinate
    y_min: Coordinate
    x_max: Coordinate = Field(description="Greater than x_min, at most the image's width.")
    y_max: Coordinate = Field(description="Greater than y_min, at most the image's height.")


class AnnotationSet(BaseModel):
    """Send the one field that fits the view's kind: `concept` (classification), `concepts` (tagging,
    `[]` = without concept) or `boxes` (detection, `[]` = no object)."""

    # Exactly one of the three: the schema says so (one property), the service names the one the view wants.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1})

    concept: Name | None = Field(None, description="Classification: the image's one concept.")
    concepts: list[Name] | None = Field(None, max_length=1000, description="Tagging: its concepts (`[]`: without concept).")
    boxes: list[BoxModel] | None = Field(None, max_length=10_000, description="Detection: its objects (`[]`: none).")


class AnnotationItem(AnnotationSet):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 2, "maxProperties": 2})

    image_id: Id = Field(description="An image of the view's project.")


class AnnotationBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AnnotationItem] = Field(min_length=1, max_length=10_000)


class AnnotationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    image_id: int
    annotated: bool = Field(description="True once the image's content was stated, even as nothing.")
    split: Literal["train", "val", "test"] | None = Field(description="Fixed side; null: the split setting decides.")
    concepts: list[str] = Field(description="Classification: one name; tagging: zero or more.")
    boxes: list[BoxModel]


class SplitSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_ids: list[Id] = Field(
        min_length=1, max_length=100_000, json_schema_extra={"uniqueItems": True}, description="Images of the view's project."
    )
    split: Literal["train", "val", "test"] | None = Field(description="null gives the images back to the split setting.")


class SplitResult(BaseModel):
    updated: int
