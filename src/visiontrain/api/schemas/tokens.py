from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from visiontrain.api.schemas.common import Name, Public


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(description="Where the token is used, to recognise it in the list.", examples=["laptop"])

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the token name must not be blank")
        return value


class TokenPublic(Public):
    """A token as listed: never its secret, only its first characters."""

    id: int
    name: str
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Last request made with it (recorded at most once a minute).")
    revoked_at: datetime | None
    current: bool = Field(False, description="Whether this is the token making the request.")


class TokenCreated(TokenPublic):
    token: str = Field(description="The secret, shown only in this answer: only its hash is stored.")
