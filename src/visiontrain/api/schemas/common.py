from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing: ``items`` from ``offset``, and how many match in all."""

    items: list[T]
    total: int = Field(description="Items matching the filters, over all pages.")
    offset: int
    limit: int


class Rejected(BaseModel):
    name: str
    reason: str


class Message(BaseModel):
    detail: str
