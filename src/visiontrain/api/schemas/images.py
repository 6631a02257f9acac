from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from visiontrain.api.schemas.annotations import AnnotationPublic
from visiontrain.api.schemas.common import DuplicateFile, Public, Rejected


class ImagePublic(Public):
    id: int
    project_id: int
    sha256: str = Field(description="Content hash: the same bytes uploaded twice are one image.")
    original_name: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    created_at: datetime
    annotation: AnnotationPublic | None = Field(
        None, description="The image's annotation in the view given by `view_id` (listings with a view only)."
    )
    side: Literal["train", "val", "test"] | None = Field(
        None,
        description="Where the view's split puts it (listings with a view only): the side fixed for it, else the "
        "one the stored split gave it; null: not placed yet (the next version places it).",
    )


class UploadResult(BaseModel):
    created: int = Field(description="Images new to the project.")
    duplicates: int = Field(description="Uploads whose bytes the project already had (the existing image is returned).")
    images: list[ImagePublic]
    rejected: list[Rejected] = Field(default_factory=list, description="Archive entries that are not usable images.")
    duplicate_files: list[DuplicateFile] = Field(default_factory=list, description="Each of the `duplicates`, and which image it repeats.")
