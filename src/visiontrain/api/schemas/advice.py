"""The body of `GET /versions/{id}/advice`: what to try next after a version's run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AdvicePublic(BaseModel):
    rule: str = Field(description="Which rule found it: learning_rate_too_high, learning_rate_too_low, overfitting, underfitting, "
                                  "still_improving, fine_tune_no_gain, confused_pairs, weak_concepts, imbalance, few_validation_images.")
    title: str
    evidence: str = Field(description="What in the run's curves or evaluation shows it, with the numbers.")
    why: str = Field(description="Why the changed settings should help.")
    changes: dict[str, Any] = Field(description="Settings to change for the next version (valid with the rest of this version's settings); "
                                                "empty when the fix is more images.")
    current: dict[str, Any] = Field(description="Those settings' values in this version.")


class AdviceReportPublic(BaseModel):
    items: list[AdvicePublic]
    reason: str | None = Field(description="Why there is no advice (the version has not finished, or nothing stands out); null when there is.")
