"""The one API route the studio adds: settings suggested from a view's data (``web.suggest``).

``POST /api/v1/views/{view_id}/suggested-settings`` with ``{"concepts": [...], "settings": {...}}``
(both optional: all of the view's concepts; the settings so far, partial) answers
``{"settings": {name: value}, "reasons": {name: why}, "warnings": [...]}``. It changes nothing.
Kept here, beside the heuristic, and included by :func:`visiontrain.web.mount`.

The studio also relies on these platform routes, made for it: ``GET/POST/DELETE /api/v1/tokens`` (the
tokens page), ``…/images/{id}/content?max_side=N`` (thumbnails in grids), and the evaluation report's
``predictions`` (every validation image, so that any cell of the confusion matrix shows its images).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from visiontrain.api.deps import SessionDep, ViewDep
from visiontrain.settings import TrainingSettings
from visiontrain.web.suggest import suggest_for_view


class SuggestionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concepts: list[str] | None = Field(None, description="The model's concepts (default: all of the view's).")
    settings: TrainingSettings = Field(default_factory=TrainingSettings, description="The settings so far (partial).")


class SuggestionPublic(BaseModel):
    settings: dict[str, Any] = Field(description="Suggested values, only for the settings the data speaks to.")
    reasons: dict[str, str] = Field(description="Why each value, one line per setting.")
    warnings: list[str] = Field(description="What about the data deserves attention (imbalance, too few images).")


router = APIRouter(prefix="/api/v1", tags=["settings"])


@router.post(
    "/views/{view_id}/suggested-settings",
    response_model=SuggestionPublic,
    summary="Training settings suited to the view's annotated images (size and balance); changes nothing",
)
def suggested_settings(body: SuggestionRequest, view: ViewDep, session: SessionDep) -> SuggestionPublic:
    suggestion = suggest_for_view(session, view=view, concepts=body.concepts, base=body.settings)
    return SuggestionPublic(**suggestion.as_dict())
