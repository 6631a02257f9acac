"""Bodies of the experiment assistant's routes: settings suggested from a view's data, the learning-rate test."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from visiontrain.api.schemas.common import Name
from visiontrain.api.schemas.training import SettingsInput


class AssistantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concepts: list[Name] | None = Field(None, max_length=10_000, description="The model's concepts (default: all of the view's).")
    settings: SettingsInput = Field(  # type: ignore[valid-type]
        default_factory=SettingsInput, description="The settings so far, partial: the rest take the view's task's defaults."
    )


class Answer(BaseModel):
    answer: str
    settings: dict[str, Any] = Field(description="What this answer sets.")


class Question(BaseModel):
    setting: str = Field(description="The setting the question is about.")
    question: str
    why: str
    current: str | None = Field(description="The answer the settings give now, if one does.")
    answers: list[Answer]


class SuggestionPublic(BaseModel):
    settings: dict[str, Any] = Field(description="Suggested values, only for the settings the data speaks to.")
    reasons: dict[str, str] = Field(description="Why each value, one line per setting.")
    kept: dict[str, str] = Field(description="Settings deliberately left as they are, and why (a fixed validation set).")
    questions: list[Question] = Field(description="What the data cannot tell (does left/right matter?), each answer's settings.")
    warnings: list[str] = Field(description="What about the data deserves attention (imbalance, too few images).")
    counts: dict[str, Any] = Field(description="Images per concept on each side of the split the suggestion is for.")


class LrFindRequest(AssistantRequest):
    steps: int = Field(100, ge=10, le=500, description="Steps of the range test (one mini-batch each).")


class LrFindPublic(BaseModel):
    suggestion: float = Field(description="The suggested learning rate for the head.")
    rule: str = Field(description="The rule that chose it.")
    reason: str = Field(description="Why this rate, in the curve's numbers.")
    steepest_rate: float
    lowest_loss_rate: float
    rates: list[float] = Field(description="The rate at each step (rising exponentially).")
    losses: list[float] = Field(description="The training loss at each step.")
    smoothed: list[float] = Field(description="The loss smoothed (exponential average), what the rule reads.")
    images: int = Field(description="Training images the test ran on.")
    features: int = Field(description="Feature rows (images and augmented copies), now in the server's feature cache.")
