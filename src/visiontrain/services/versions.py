"""Model versions: one training run each, queued here and run by a worker (``visiontrain.jobs``).

Creating a version takes a snapshot of the images and annotations it will train on, one row per
image, with each image's side (train or validation) decided now: images the user fixed keep their
side; when the user fixed no validation images, the others take their side in the view's split
(``services.splits``: stored on the view, stratified and seeded, extended to new images without
moving old ones), so every version of every model on the view is judged on the same validation
images. Later edits to annotations never change a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, contains_eager, defer, selectinload

from visiontrain.config import ServerConfig
from visiontrain.jobs import queue
from visiontrain.services import splits
from visiontrain.services.errors import Conflict, InvalidInput, NotFound
from visiontrain.settings import TrainingSettings
from visiontrain.settings_check import settings_runnable_here
from visiontrain.store.base import Split, VersionStatus, ViewKind, utcnow
from visiontrain.store.db import STALE_AFTER_KEY
from visiontrain.store.models import Artifact, Model, ModelVersion, Project, VersionMetric, VersionSample, View

TRAINABLE_KINDS = frozenset({ViewKind.classification, ViewKind.tagging, ViewKind.detection})
HARDWARE_FIELDS = frozenset({"accelerator", "devices"})
# A worker silent this long is not counted as running: the default stale period, for a session no server made.
WORKER_STALE_SECONDS = ServerConfig.model_fields["stale_after_seconds"].default


def create_version(
    session: Session, *, model: Model, settings: TrainingSettings, name: str | None = None,
    stale_after_seconds: float | None = None,
) -> ModelVersion:
    """Queue a training run of ``model`` with ``settings`` on a snapshot of the view's annotations.

    Settings the request left out take the view's task's defaults (``TASK_DEFAULTS``: detection trains
    with SGD at 0.01 on batches of 4); the version stores them whole, and what a worker needs to run
    it (``needs_accelerator``, ``needs_devices``). A GPU or several devices this machine lacks are
    accepted when a running worker has them (workers on other machines).
    """
    kind = ViewKind(model.view.kind)
    settings = settings.with_task_defaults(kind.value)
    if kind not in TRAINABLE_KINDS:
        raise InvalidInput(
            f"training {kind.value} models is not available yet (view {model.view_id} is a {kind.value} view; "
            "only classification and tagging views can be trained for now). Its images and annotations are kept.",
            loc=("path", "model_id"),
        )
    if settings.weights_path is not None:
        # A path on the server's disk: a client must not make the worker read (or unpickle) any file it names.
        raise InvalidInput(
            "weights_path names a file on the server and cannot be set through the API; "
            "leave it empty to start from the backbone's built-in weights",
            loc=("body", "settings", "weights_path"),
        )
    needs = queue.requirements(settings.model_dump(mode="json"))
    stale_after_seconds = stale_after_seconds or stale_period(session)
    problems = settings_runnable_here(settings, kind.value)  # validates anywhere, but would fail on this machine
    no_worker = ""
    if any(p.field in HARDWARE_FIELDS for p in problems):
        # Trained by a worker, maybe on another machine: the hardware only has to be a running worker's.
        if queue.waiting_for(session, needs=needs, stale_after_seconds=stale_after_seconds) is None:
            problems = [p for p in problems if p.field not in HARDWARE_FIELDS]
        else:
            no_worker = f"; and no running worker has {queue.describe_needs(needs)} either"
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems) + no_worker, loc=("body", "settings", problems[0].field))
    name = (name or "").strip() or _next_name(session, model)
    if session.scalar(select(ModelVersion.id).where(ModelVersion.model_id == model.id, ModelVersion.name == name)):
        raise Conflict(f"model {model.name!r} already has a version named {name!r}")
    samples, data_split = _snapshot(session, model=model, settings=settings)
    version = ModelVersion(
        model_id=model.id,
        name=name,
        settings=settings.model_dump(mode="json"),
        status=VersionStatus.queued.value,
        sample_count=len(samples),
        data_split=data_split,
        needs_accelerator=needs[0],
        needs_devices=needs[1],
    )
    session.add(version)
    session.flush()
    _store_samples(session, version=version, samples=samples)
    return version


def stale_period(session: Session) -> float:
    """The stale period of the server whose session this is (the default for a session made elsewhere)."""
    return float(session.info.get(STALE_AFTER_KEY, WORKER_STALE_SECONDS))


def waiting_reason(session: Session, *, version: ModelVersion, stale_after_seconds: float | None = None) -> str | None:
    """For a queued version that no running worker can take: what it waits for and what the running
    workers have (None otherwise). A worker counts as running within the server's stale period."""
    if version.status != VersionStatus.queued:
        return None
    return queue.waiting_for(session, needs=(version.needs_accelerator, version.needs_devices),
                             stale_after_seconds=stale_after_seconds or stale_period(session))


def _next_name(session: Session, model: Model) -> str:
    count = session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.model_id == model.id)) or 0
    taken = set(session.scalars(select(ModelVersion.name).where(ModelVersion.model_id == model.id)))
    number = count + 1
    while f"v{number}" in taken:
        number += 1
    return f"v{number}"


# Rows per INSERT of a snapshot: one statement per chunk, not one ORM object flushed per image.
_SAMPLE_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One image of a snapshot: the fields of the ``VersionSample`` row a version stores for it (plain
    values: making 100,000 ORM objects took half of a snapshot's time)."""

    image_id: int | None
    sha256: str
    blob_key: str
    image_name: str
    annotation: Any
    split: str | None


def _store_samples(session: Session, *, version: ModelVersion, samples: list[SnapshotRow]) -> None:
    """The snapshot's rows in bulk INSERTs, in the samples' order (their ids keep it)."""
    for start in range(0, len(samples), _SAMPLE_CHUNK):
        session.execute(insert(VersionSample), [
            {"version_id": version.id, "image_id": row.image_id, "sha256": row.sha256, "blob_key": row.blob_key,
             "image_name": row.image_name, "annotation": row.annotation, "split": row.split}
            for row in samples[start:start + _SAMPLE_CHUNK]
        ])


def _snapshot(
    session: Session, *, model: Model, settings: TrainingSettings
) -> tuple[list[SnapshotRow], dict[str, Any]]:
    return snapshot(session, view=model.view, concepts=[c.name for c in model.concepts], settings=settings, persist=True)


def snapshot(
    session: Session, *, view: View, concepts: list[str], settings: TrainingSettings, persist: bool, check: bool = True
) -> tuple[list[SnapshotRow], dict[str, Any]]:
    """One row per annotated image of the concepts with its label(s) and side, and which split that is.

    ``persist``: store the sides given to new images (a version); False: what the next version would
    train on, nothing written (the learning-rate test, the settings assistant). ``check``: refuse
    concepts missing from a side.

    Classification: the images of the model's classes, each with its one class. Tagging: every
    annotated image of the view with the model's concepts it shows (none: "without concept", an
    all-negative example). Detection: every annotated image with its boxes of the model's concepts,
    ``[{"concept", "box": [x_min, y_min, x_max, y_max]}]`` (none: a negative). Checked (each concept
    on both sides) before anything is stored.
    """
    kind = ViewKind(view.kind)
    state = splits.split_state(
        session, view=view, persist=persist, fraction=settings.validation_split, seed=settings.seed
    )
    names = list(concepts)
    chosen = set(names)
    rows: list[tuple[splits.SplitEntry, Any]] = []
    boxes = _boxes(session, view_id=view.id) if kind == ViewKind.detection else {}
    for entry in state.entries:
        if kind == ViewKind.classification:
            if len(entry.labels) == 1 and entry.labels[0] in chosen:
                rows.append((entry, entry.labels[0]))
        elif kind == ViewKind.detection:
            rows.append((entry, [b for b in boxes.get(entry.image.id, []) if b["concept"] in chosen]))
        else:
            rows.append((entry, [n for n in names if n in entry.labels]))
    fixed_val = any(entry.fixed == Split.val for entry, _ in rows)
    # The user's own validation set, when they fixed one; otherwise the view's split.
    side = {
        entry.image.id: (entry.fixed or Split.train.value) if fixed_val else entry.side for entry, _ in rows
    }

    def shown(annotation: Any) -> set[str]:
        """The concepts an image's annotation shows, each once."""
        if kind == ViewKind.detection:
            return {box["concept"] for box in annotation}
        return {annotation} if kind == ViewKind.classification else set(annotation)

    # Images showing each concept per side, in one pass over the rows (not one per concept and side).
    per_side = {concept: {Split.train.value: 0, Split.val.value: 0} for concept in names}
    for entry, annotation in rows:
        image_side = side[entry.image.id]
        if image_side not in (Split.train, Split.val):
            continue
        for concept in shown(annotation):
            if concept in per_side:
                per_side[concept][image_side] += 1
    problems = []
    for concept in names:
        n_train, n_val = per_side[concept][Split.train.value], per_side[concept][Split.val.value]
        if n_train == 0 or n_val == 0:
            problems.append(f"{concept!r} ({n_train} training, {n_val} validation)")
    if problems and check:
        what = "annotated images" if kind == ViewKind.classification else "at least one image showing it"
        raise InvalidInput(
            f"every concept needs {what} on both sides, training and validation; too few for "
            + ", ".join(problems)
            + ": annotate more images (at least 2 per concept) or fix their split",
            loc=("path", "model_id"),
        )
    warnings = []
    if state.fraction != settings.validation_split and not fixed_val:
        warnings.append(
            f"validated on the view's split ({state.fraction:g} of the images, seed {state.seed}), not validation_split "
            f"{settings.validation_split:g}: every version of the view is judged on the same images; re-split the view to change it"
        )
    val_shas = [e.image.sha256 for e, _ in rows if side[e.image.id] == Split.val]
    test_images = sum(1 for e, _ in rows if side[e.image.id] == Split.test)
    data_split = {
        "source": "fixed" if fixed_val else "view",
        "validation_split": state.fraction,
        "seed": state.seed,
        "generation": state.generation,
        "train_images": len(rows) - len(val_shas) - test_images,
        "validation_images": len(val_shas),
        "test_images": test_images,
        "validation_digest": splits.validation_digest(val_shas),
        "warnings": warnings + [w for w in state.warnings if any(f"{n!r}" in w for n in names)],
    }
    samples = [
        SnapshotRow(image_id=entry.image.id, sha256=entry.image.sha256, blob_key=entry.image.blob_key,
                    image_name=entry.image.original_name, annotation=annotation, split=side[entry.image.id])
        for wanted in (Split.train, Split.val, Split.test)
        for entry, annotation in rows
        if side[entry.image.id] == wanted
    ]
    return samples, data_split


def _boxes(session: Session, *, view_id: int) -> dict[int, list[dict[str, Any]]]:
    """Each image's boxes in the view, in the order they were drawn."""
    from collections import defaultdict

    from visiontrain.store.models import Annotation, Concept

    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = session.execute(
        select(Annotation.image_id, Concept.name, Annotation.x_min, Annotation.y_min, Annotation.x_max, Annotation.y_max)
        .join(Concept, Concept.id == Annotation.concept_id)
        .where(Annotation.view_id == view_id, Annotation.x_min.is_not(None)).order_by(Annotation.id)
    )
    for image_id, concept, x_min, y_min, x_max, y_max in rows:
        found[image_id].append({"concept": concept, "box": [x_min, y_min, x_max, y_max]})
    return found


# What a prediction request never reads of its version: JSON documents that can run to many kB (the
# evaluation, the curves' summary), parsed on every request were they loaded. Deferred, not dropped: read, they load.
_NOT_FOR_SERVING = (ModelVersion.settings, ModelVersion.timings, ModelVersion.best_metrics, ModelVersion.summary,
                    ModelVersion.evaluation, ModelVersion.data_split, ModelVersion.error)


def get_version(session: Session, *, organization_id: int, version_id: int, serving: bool = False) -> ModelVersion:
    """The organization's version (404 otherwise) with its model, view and project. ``serving``: for a
    prediction, its artifacts loaded too and the large documents it does not need left for later."""
    # One query for the version and the chain up to its project (every version route reads them; loaded
    # lazily they were four, a cost each prediction request paid).
    query = (
        select(ModelVersion)
        .join(ModelVersion.model).join(Model.view).join(View.project)
        .where(ModelVersion.id == version_id, Project.organization_id == organization_id)
        .options(contains_eager(ModelVersion.model).contains_eager(Model.view).contains_eager(View.project))
    )
    if serving:
        query = query.options(*(defer(column) for column in _NOT_FOR_SERVING), selectinload(ModelVersion.artifacts))
    version = session.scalar(query)
    if version is None:
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
    """The number a list shows: the best value of the metric the run chose its checkpoint by (the summary's
    ``monitor``: val_accuracy for classification, val_map for tagging; val_accuracy for older runs)."""
    monitor = (version.summary or {}).get("monitor") or "val_accuracy"
    if version.best_metrics and monitor in version.best_metrics:
        return {"name": monitor, "value": version.best_metrics[monitor]}
    return None
