"""What to try after a version's run: the engine's advice on the version's stored epochs, summary and evaluation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from visiontrain.assistant.advice import AdviceReport, advise
from visiontrain.store.base import VersionStatus
from visiontrain.store.models import ModelVersion, VersionMetric


def version_advice(session: Session, *, version: ModelVersion) -> AdviceReport:
    """The advice for a finished version; a queued or running one gets none, with the reason."""
    status = VersionStatus(version.status)
    if not status.finished:
        return AdviceReport([], f"version {version.name} is {status.value}: advice comes from its curves once it has finished")
    rows = session.scalars(
        select(VersionMetric.data).where(VersionMetric.version_id == version.id, VersionMetric.kind == "epoch").order_by(VersionMetric.id)
    )
    summary = {"status": status.value, "message": version.error, **(version.summary or {})}
    return advise(list(rows), summary, version.evaluation, version.settings)
