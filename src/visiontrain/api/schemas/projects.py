from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from visiontrain.api.schemas.common import Public


class ProjectBase(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Ants and bees"])
    description: str = Field("", max_length=10_000)


class ProjectCreate(ProjectBase):
    pass


class ProjectUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)


class ProjectPublic(ProjectBase, Public):
    id: int
    created_at: datetime
    image_count: int = 0
    view_count: int = 0


class Identity(BaseModel):
    """Who the token belongs to."""

    organization: str
    organization_id: int
    token_name: str
