"""Model versions: one training run each, queued here and run by a worker (``visiontrain.jobs``).

Creating a version takes a snapshot of the images and annotations it will train on, with each
image's side (train or validation) decided now: images the user fixed keep their side; when the
user fixed no validation images, the rest are split by the settings' ``validation_split``
(stratified, seeded). Later edits to annotations never change a version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError
from visiontrain.data.split import stratified_split
from visiontrain.services.errors import Conflict, InvalidInput, NotFound
from visiontrain.settings import TrainingSettings
from visiontrain.settings_check import settings_runnable_here
from visiontrain.store.base import Split, VersionStatus, ViewKind, utcnow
from visiontrain.store.models import (
    Annotation,
    Artifact,
    Concept,
    Image,
    Model,
    ModelVersion,
    VersionMetric,
    VersionSample,
    ViewImage,
)

TRAINABLE_KINDS = frozenset({ViewKind.classification})


def create_version(
    session: Session, *, model: Model, settings: TrainingSettings, name: str | None = None
) -> ModelVersion:
    """Queue a training run of ``model`` with ``settings`` on a snapshot of the view's annotations."""
    kind = ViewKind(model.view.kind)
    if kind not in TRAINABLE_KINDS:
        raise InvalidInput(
            f"training {kind.value} models is not available yet (view {model.view_id} is a {kind.value} view; "
            "only classification views can be trained for now). Its images and annotations are kept.",
            loc=("path", "model_id"),
        )
    if settings.weights_path is not None:
        # A path on the server's disk: a client must not make the worker read (or unpickle) any file it names.
        raise InvalidInput(
            "weights_path names a file on the server and cannot be set through the API; "
            "leave it empty to start from the backbone's built-in weights",
            loc=("body", "settings", "weights_path"),
        )
    problems = settings_runnable_here(settings)  # validates anywhere, but would fail on this machine
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), loc=("body", "settings", problems[0].field))
    name = (name or "").strip() or _next_name(session, model)
    if session.scalar(select(ModelVersion.id).where(ModelVersion.model_id == model.id, ModelVersion.name == name)):
        raise Conflict(f"model {model.name!r} already has a version named {name!r}")
    samples = _snapshot(session, model=model, settings=settings)
    version = ModelVersion(
        model_id=model.id,
        name=name,
        settings=settings.model_dump(mode="json"),
        status=VersionStatus.queued.value,
        sample_count=len(samples),
    )
    session.add(version)
    session.flush()
    for sample in samples:
        sample.version_id = version.id
    session.add_all(samples)
    session.flush()
    return version


def _next_name(session: Session, model: Model) -> str:
    count = session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.model_id == model.id)) or 0
    taken = set(session.scalars(select(ModelVersion.name).where(ModelVersion.model_id == model.id)))
    number = count + 1
    while f"v{number}" in taken:
        number += 1
    return f"v{number}"


def _snapshot(session: Session, *, model: Model, settings: TrainingSettings) -> list[VersionSample]:
    """Annotated images of the model's concepts, each with its label and side; checked before anything is stored."""
    concept_ids = [c.id for c in model.concepts]
    rows = session.execute(
        select(Image, Concept.name, ViewImage.split)
        .join(Annotation, Annotation.image_id == Image.id)
        .join(Concept, Concept.id == Annotation.concept_id)
        .join(ViewImage, (ViewImage.image_id == Image.id) & (ViewImage.view_id == Annotation.view_id))
        .where(Annotation.view_id == model.view_id, Annotation.concept_id.in_(concept_ids), ViewImage.annotated.is_(True))
        .order_by(Image.id)
    ).all()
    fixed_val = [(image, label) for image, label, split in rows if split == Split.val]
    fixed_train = [(image, label) for image, label, split in rows if split == Split.train]
    free = [(image, label) for image, label, split in rows if split is None]
    by_key = {image.blob_key: image for image, _, _ in rows}
    if fixed_val:
        train, val = fixed_train + free, fixed_val
    else:
        try:
            split_train, split_val = stratified_split(
                [Sample(Path(image.blob_key), label) for image, label in free], settings.validation_split, settings.seed
            )
        except DataError as exc:
            raise InvalidInput(f"cannot split the annotated images: {exc}", loc=("body", "settings", "validation_split")) from None
        train = fixed_train + [(by_key[s.path.as_posix()], s.label) for s in split_train]
        val = [(by_key[s.path.as_posix()], s.label) for s in split_val]
    problems = []
    for concept in model.concepts:
        n_train = sum(1 for _, label in train if label == concept.name)
        n_val = sum(1 for _, label in val if label == concept.name)
        if n_train == 0 or n_val == 0:
            problems.append(f"{concept.name!r} ({n_train} training, {n_val} validation)")
    if problems:
        raise InvalidInput(
            "every concept needs annotated images on both sides, training and validation; too few for "
            + ", ".join(problems)
            + ": annotate more images (at least 2 per concept) or fix their split",
            loc=("path", "model_id"),
        )
    return [
        VersionSample(image_id=image.id, sha256=image.sha256, blob_key=image.blob_key, image_name=image.original_name,
                      annotation=label, split=side.value)
        for side, pairs in ((Split.train, train), (Split.val, val))
        for image, label in pairs
    ]


def get_version(session: Session, *, organization_id: int, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None or version.model.view.project.organization_id != organization_id:
        raise NotFound(f"model version {version_id} not found")
    return version


def list_versions(session: Session, *, model: Model) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.id)))


def cancel_version(session: Session, *, version: ModelVersion) -> ModelVersion:
    """A queued version is cancelled at once; a running one is asked to stop (its worker checks every second)."""
    if VersionStatus(version.status).finished:
        raise Conflict(f"version {version.id} has already {version.status}; there is nothing to cancel")
    # Conditional updates: a worker may claim or finish the version at the same moment.
    cancelled = session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == version.id, ModelVersion.status == VersionStatus.queued)
        .values(status=VersionStatus.cancelled.value, cancel_requested=True, finished_at=utcnow(), error=None)
    ).rowcount
    if not cancelled:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version.id, ModelVersion.status == VersionStatus.running)
            .values(cancel_requested=True)
        )
    session.flush()
    session.refresh(version)
    return version


def delete_version(session: Session, *, version: ModelVersion) -> list[str]:
    """Delete a finished version; returns its artifact keys (the caller removes the bytes after commit)."""
    if not VersionStatus(version.status).finished:
        raise Conflict(f"version {version.id} is {version.status}: cancel it first, then delete it")
    keys = [a.blob_key for a in version.artifacts]
    session.delete(version)
    session.flush()
    return keys


def version_samples(session: Session, *, version: ModelVersion) -> list[VersionSample]:
    return list(session.scalars(select(VersionSample).where(VersionSample.version_id == version.id).order_by(VersionSample.id)))


def version_metrics(
    session: Session, *, version: ModelVersion, after_id: int = 0, kinds: list[str] | None = None, limit: int = 10_000
) -> list[VersionMetric]:
    query = select(VersionMetric).where(VersionMetric.version_id == version.id, VersionMetric.id > after_id)
    if kinds:
        query = query.where(VersionMetric.kind.in_(kinds))
    return list(session.scalars(query.order_by(VersionMetric.id).limit(limit)))


def get_artifact(session: Session, *, version: ModelVersion, kind: str) -> Artifact:
    artifact = session.scalar(select(Artifact).where(Artifact.version_id == version.id, Artifact.kind == kind))
    if artifact is None:
        hint = "it has not finished training" if not VersionStatus(version.status).finished else "none was produced"
        raise NotFound(f"version {version.id} has no {kind} ({hint})")
    return artifact


def headline_metric(version: ModelVersion) -> dict[str, Any] | None:
    """The number a list shows: best validation accuracy, when there is one."""
    if version.best_metrics and "val_accuracy" in version.best_metrics:
        return {"name": "val_accuracy", "value": version.best_metrics["val_accuracy"]}
    return None
