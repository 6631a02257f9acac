from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from visiontrain.api.schemas.common import Public, Rejected

Kind = Literal["classification", "tagging", "detection"]


class ViewCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    concepts: list[str] = Field(default_factory=list, description="Concepts to create with the view.")


class ViewUpdate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


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
    name: str = Field(min_length=1, max_length=200)


class ConceptPublic(Public):
    id: int
    view_id: int
    name: str
    image_count: int = Field(0, description="Images annotated with this concept.")


class ImportFormat(BaseModel):
    name: str
    title: str


class ImportResult(BaseModel):
    format: str
    images: int = Field(description="Images read from the archive and stored (new or already present).")
    created: int
    duplicates: int
    annotated: int
    concepts_created: list[str]
    rejected: list[Rejected]
    warnings: list[str]
    summary: dict[str, Any]
