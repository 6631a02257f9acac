from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from visiontrain.api.schemas.common import DuplicateFile, Name, Public, Rejected

Kind = Literal["classification", "tagging", "detection"]


class ViewCreate(BaseModel):
    name: Name
    kind: Kind
    concepts: list[Name] = Field(default_factory=list, max_length=10_000, description="Concepts to create with the view.")


class ViewUpdate(BaseModel):
    name: Name


class ViewPublic(Public):
    id: int
    project_id: int
    name: str
    kind: Kind
    created_at: datetime
    concepts: list[str] = Field(default_factory=list)
    images: int = 0
    annotated: int = 0
    unannotated: int = 0


class ConceptCreate(BaseModel):
    name: Name


class ConceptPublic(Public):
    id: int
    view_id: int
    name: str
    image_count: int = Field(0, description="Images annotated with this concept.")


class ConceptSides(BaseModel):
    train: int
    val: int
    test: int = 0


class ViewSplit(BaseModel):
    """The view's validation split: every version of every model on the view is judged on it."""

    validation_split: float = Field(description="Fraction of the images it holds out for validation.")
    seed: int
    generation: int = Field(description="Goes up by one at each re-split; versions record theirs.")
    made: bool = Field(description="False until the first version or a re-split stores it (this is what it would be).")
    images: int = Field(description="Annotated images of the view.")
    train: int
    val: int
    fixed_train: int = Field(description="Images the user fixed to training (PUT /split).")
    fixed_val: int
    test: int = Field(0, description="Held-out test images: evaluated after training, never used to choose a model.")
    fixed_test: int = 0
    fixed_validation_only: bool = Field(description="True when the user fixed validation images: they alone are the validation set.")
    concepts: dict[str, ConceptSides] = Field(description="Images showing each concept on each side.")
    warnings: list[str]


class ResplitRequest(BaseModel):
    validation_split: float | None = Field(None, gt=0, lt=1, description="Default: the view's current fraction.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Default: the view's current seed.")


class ImportFormat(BaseModel):
    name: str
    title: str


class ImportResult(BaseModel):
    format: str
    images: int = Field(description="Images read from the archive and stored (new or already present).")
    created: int
    duplicates: int = Field(description="Files whose bytes were already stored (in the project, or earlier in the archive).")
    annotated: int
    concepts_created: list[str]
    rejected: list[Rejected]
    warnings: list[str]
    summary: dict[str, Any]
    duplicate_files: list[DuplicateFile] = Field(default_factory=list, description="Each of the `duplicates`, and which image it repeats.")
