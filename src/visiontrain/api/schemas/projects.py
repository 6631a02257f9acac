from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from visiontrain.api.schemas.common import Name, Public, Text


class ProjectBase(BaseModel):
    name: Name = Field(examples=["Ants and bees"])
    description: Text = Field("", max_length=10_000)


class ProjectCreate(ProjectBase):
    pass


class ProjectUpdate(BaseModel):
    name: Name | None = None
    description: Text | None = Field(None, max_length=10_000)


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
