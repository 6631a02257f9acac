"""Views (one task on a project's images) and their concepts."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from visiontrain.services.errors import Conflict, InvalidInput, NotFound
from visiontrain.store.base import ViewKind
from visiontrain.store.models import Annotation, Concept, Image, Model, Project, View, ViewImage, model_concepts


MAX_NAME_LENGTH = 200


def _clean(name: str, what: str, loc: tuple[str | int, ...] = ("body", "name")) -> str:
    """A usable name or a 422 at ``loc`` that quotes the name (an import's folder name is not the body's)."""
    name = name.strip()
    if not name:
        raise InvalidInput(f"{what} name must not be empty", loc=loc)
    if "\x00" in name:
        raise InvalidInput(f"{what} name {name.replace(chr(0), '')[:60]!r} contains a NUL character", loc=loc)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"{what} name {name[:40] + '...'!r} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}",
            loc=loc,
        )
    return name


def create_view(
    session: Session, *, project: Project, name: str, kind: ViewKind | str, concepts: list[str] | None = None
) -> View:
    name = _clean(name, "view")
    try:
        kind = ViewKind(kind)
    except ValueError:
        raise InvalidInput(
            f"unknown view kind {kind!r}: use one of {', '.join(k.value for k in ViewKind)}", loc=("body", "kind")
        ) from None
    if session.scalar(select(View.id).where(View.project_id == project.id, View.name == name)):
        raise Conflict(f"project {project.id} already has a view named {name!r}")
    view = View(project_id=project.id, name=name, kind=kind.value)
    session.add(view)
    session.flush()
    for index, concept in enumerate(dict.fromkeys(concepts or [])):
        create_concept(session, view=view, name=concept, loc=("body", "concepts", index))
    return view


def get_view(session: Session, *, organization_id: int, view_id: int) -> View:
    view = session.get(View, view_id)
    if view is None or view.project.organization_id != organization_id:
        raise NotFound(f"view {view_id} not found")
    return view


def list_views(session: Session, *, project: Project) -> list[View]:
    return list(session.scalars(select(View).where(View.project_id == project.id).order_by(View.id)))


def rename_view(session: Session, *, view: View, name: str) -> View:
    name = _clean(name, "view")
    if session.scalar(select(View.id).where(View.project_id == view.project_id, View.name == name, View.id != view.id)):
        raise Conflict(f"project {view.project_id} already has a view named {name!r}")
    view.name = name
    session.flush()
    return view


def delete_view(session: Session, *, view: View) -> None:
    """Models first (a concept a model uses cannot go before the model), then the view; the database cascades."""
    from visiontrain.services.models import refuse_if_training

    refuse_if_training(session, view_ids=select(View.id).where(View.id == view.id), what=f"view {view.name!r}")
    session.execute(delete(Model).where(Model.view_id == view.id))
    session.execute(delete(View).where(View.id == view.id))
    session.expunge(view)


def view_counts(session: Session, *, view: View) -> dict[str, int]:
    """Images in the project, annotated in this view, and not yet annotated."""
    images = session.scalar(select(func.count()).select_from(Image).where(Image.project_id == view.project_id)) or 0
    annotated = (
        session.scalar(
            select(func.count()).select_from(ViewImage).where(ViewImage.view_id == view.id, ViewImage.annotated.is_(True))
        )
        or 0
    )
    return {"images": images, "annotated": annotated, "unannotated": images - annotated}


# --- concepts


def create_concept(
    session: Session, *, view: View, name: str, loc: tuple[str | int, ...] = ("body", "name")
) -> Concept:
    """``loc``: where the name came from, for the error (an import names its archive, not ``body.name``)."""
    name = _clean(name, "concept", loc)
    if session.scalar(select(Concept.id).where(Concept.view_id == view.id, Concept.name == name)):
        raise Conflict(f"view {view.id} already has a concept named {name!r}")
    concept = Concept(view_id=view.id, name=name)
    session.add(concept)
    session.flush()
    return concept


def get_concept(session: Session, *, view: View, concept_id: int) -> Concept:
    concept = session.get(Concept, concept_id)
    if concept is None or concept.view_id != view.id:
        raise NotFound(f"concept {concept_id} not found in view {view.id}")
    return concept


def concepts_by_name(session: Session, *, view: View, names: list[str], loc: tuple[str | int, ...]) -> dict[str, Concept]:
    """The view's concepts with these names; an unknown name is a 422 that lists the known ones."""
    known = {c.name: c for c in session.scalars(select(Concept).where(Concept.view_id == view.id))}
    missing = [n for n in names if n not in known]
    if missing:
        raise InvalidInput(
            f"unknown concept(s) {', '.join(map(repr, missing))} in view {view.id}; "
            f"known: {', '.join(map(repr, sorted(known))) or 'none yet'} (create a concept first)",
            loc=loc,
        )
    return {n: known[n] for n in names}


def list_concepts(session: Session, *, view: View) -> list[tuple[Concept, int]]:
    """Each concept with the number of images annotated with it: one GROUP BY over the view's
    annotations (ix_annotations_view_concept_image holds all it reads)."""
    counts = dict(
        session.execute(
            select(Annotation.concept_id, func.count(func.distinct(Annotation.image_id)))
            .where(Annotation.view_id == view.id)
            .group_by(Annotation.concept_id)
        ).all()
    )
    concepts = session.scalars(select(Concept).where(Concept.view_id == view.id).order_by(Concept.id))
    return [(concept, counts.get(concept.id, 0)) for concept in concepts]


def rename_concept(session: Session, *, concept: Concept, name: str) -> Concept:
    name = _clean(name, "concept")
    clash = select(Concept.id).where(Concept.view_id == concept.view_id, Concept.name == name, Concept.id != concept.id)
    if session.scalar(clash):
        raise Conflict(f"view {concept.view_id} already has a concept named {name!r}")
    concept.name = name
    session.flush()
    return concept


def delete_concept(session: Session, *, concept: Concept) -> None:
    """Remove a concept and its annotations; refused while a model uses it (that would change the model)."""
    used = session.scalars(
        select(Model.name).join(model_concepts, model_concepts.c.model_id == Model.id).where(
            model_concepts.c.concept_id == concept.id
        )
    ).all()
    if used:
        raise Conflict(
            f"concept {concept.name!r} belongs to model(s) {', '.join(map(repr, used))}; delete those models first"
        )
    affected = set(session.scalars(select(Annotation.image_id).where(Annotation.concept_id == concept.id)))
    view_id = concept.view_id
    session.delete(concept)  # its annotations go with it (ON DELETE CASCADE)
    session.flush()
    # An image whose only annotation this was is no longer annotated (it was not "without concept").
    still_annotated = set(
        session.scalars(
            select(Annotation.image_id).where(Annotation.view_id == view_id, Annotation.image_id.in_(affected))
        )
    )
    for view_image in session.scalars(
        select(ViewImage).where(ViewImage.view_id == view_id, ViewImage.image_id.in_(affected - still_annotated))
    ):
        view_image.annotated = False
    session.flush()
