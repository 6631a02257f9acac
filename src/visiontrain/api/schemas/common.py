from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")

# Ids are 64-bit in every database we run on: a larger number is a 422 naming the field, not a 500.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


# A name: 1 to 200 characters, no NUL (PostgreSQL cannot store it, and no one means it).
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Text = Annotated[str, AfterValidator(_no_nul)]


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


class DuplicateFile(BaseModel):
    """A file that added nothing: its bytes were those of an image already stored."""

    name: str = Field(description="The file as sent (its path inside an archive).")
    image_id: int = Field(description="The image it is the same bytes as.")
    same_as: str = Field(description="The earlier file of this upload with the same bytes, or the image's name in the project.")
    found_in: Literal["upload", "project"] = Field(
        description="upload: an earlier file of this same upload or archive; project: an image stored before it."
    )


class Message(BaseModel):
    """Every error but a validation error: what is wrong, for a person."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: body/query/path, then the field path.")
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """A 422: the fields that are wrong and why (FastAPI's own shape, used for the service's checks too)."""

    detail: list[FieldError]


def errors(*codes: int, media_type: str | None = None) -> dict[int | str, dict]:  # type: ignore[type-arg]
    """OpenAPI ``responses`` for these error statuses, each with its body model. ``media_type``: for a
    route whose own responses are not JSON (server-sent events), its errors are still JSON: say so."""
    descriptions = {
        400: "A file that is not what it should be (not an accepted image, corrupt, unsafe archive)",
        401: "Missing, invalid or revoked API token",
        404: "Not found in the caller's organisation",
        409: "Conflicts with the current state (a name taken, a version still training)",
        413: "Larger than the server's upload limit (the message names it)",
        422: "Invalid input: each wrong field named in `loc`",
        429: "Too many failed token attempts from this address (see Retry-After)",
        503: "The database is busy or unreachable; try again",
    }
    if media_type is not None:
        return {
            code: {
                "description": descriptions[code],
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{'ValidationErrors' if code == 422 else 'Message'}"}
                    }
                },
            }
            for code in codes
        }
    return {
        code: {"model": ValidationErrors if code == 422 else Message, "description": descriptions[code]} for code in codes
    }
