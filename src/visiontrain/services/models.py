"""Models: a named set of concepts in a view. The set never changes; another set is another model."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from visiontrain.services.errors import Conflict, InvalidInput, NotFound
from visiontrain.services.views import concepts_by_name
from visiontrain.store.base import VersionStatus
from visiontrain.store.models import Concept, Model, ModelVersion, View


def create_model(session: Session, *, view: View, name: str, concepts: list[str] | None = None) -> Model:
    """``concepts``: names of the view's concepts (default: all of them, as they are now)."""
    name = name.strip()
    if not name:
        raise InvalidInput("model name must not be empty", loc=("body", "name"))
    if session.scalar(select(Model.id).where(Model.view_id == view.id, Model.name == name)):
        raise Conflict(f"view {view.id} already has a model named {name!r}")
    if concepts is None:
        chosen = list(session.scalars(select(Concept).where(Concept.view_id == view.id).order_by(Concept.name)))
    else:
        names = list(dict.fromkeys(concepts))
        chosen = list(concepts_by_name(session, view=view, names=names, loc=("body", "concepts")).values())
    from visiontrain.tasks import get_task

    # Classification needs two classes to choose between; tagging and detection can learn one concept
    # (present or not; where it is).
    fewest = get_task(view.kind).min_classes
    if len(chosen) < fewest:
        raise InvalidInput(
            f"a {view.kind} model needs at least {fewest} concept{'s' if fewest > 1 else ''}; view {view.id} has {len(chosen)} chosen "
            f"({', '.join(c.name for c in chosen) or 'none'}): add concepts to the view first",
            loc=("body", "concepts"),
        )
    model = Model(view_id=view.id, name=name, concepts=sorted(chosen, key=lambda c: c.name))
    session.add(model)
    session.flush()
    return model


def get_model(session: Session, *, organization_id: int, model_id: int) -> Model:
    model = session.get(Model, model_id)
    if model is None or model.view.project.organization_id != organization_id:
        raise NotFound(f"model {model_id} not found")
    return model


def list_models(session: Session, *, view: View) -> list[Model]:
    return list(session.scalars(select(Model).where(Model.view_id == view.id).order_by(Model.id)))


def rename_model(session: Session, *, model: Model, name: str) -> Model:
    name = name.strip()
    if not name:
        raise InvalidInput("model name must not be empty", loc=("body", "name"))
    if session.scalar(select(Model.id).where(Model.view_id == model.view_id, Model.name == name, Model.id != model.id)):
        raise Conflict(f"view {model.view_id} already has a model named {name!r}")
    model.name = name
    session.flush()
    return model


def delete_model(session: Session, *, model: Model) -> list[str]:
    """Delete the model and its versions; returns their artifact keys (the caller removes the bytes)."""
    active = [v.name for v in model.versions if v.status in (VersionStatus.queued, VersionStatus.running)]
    if active:
        raise Conflict(f"model {model.name!r} has versions still queued or running ({', '.join(active)}): cancel them first")
    keys = [a.blob_key for v in model.versions for a in v.artifacts]
    session.delete(model)
    session.flush()
    return keys


def refuse_if_training(session: Session, *, view_ids: Select[tuple[int]], what: str) -> None:
    """Deleting what a queued or running version trains on would pull the data from under its worker."""
    active = session.execute(
        select(Model.name, ModelVersion.name)
        .join(ModelVersion, ModelVersion.model_id == Model.id)
        .where(Model.view_id.in_(view_ids), ModelVersion.status.in_([VersionStatus.queued, VersionStatus.running]))
    ).all()
    if active:
        names = ", ".join(f"{m}/{v}" for m, v in active)
        raise Conflict(f"{what} has versions still queued or running ({names}): cancel them first")
