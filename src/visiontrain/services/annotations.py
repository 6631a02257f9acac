"""Annotations: what each image shows in a view, checked against the view's kind; and the fixed split.

- classification: exactly one concept per annotated image
- tagging: zero or more concepts (zero is "without concept", a real answer)
- detection: zero or more boxes in pixel coordinates of the image as displayed
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from visiontrain.data.importers.base import Box
from visiontrain.services.errors import InvalidInput
from visiontrain.services.views import concepts_by_name
from visiontrain.store.base import Split, ViewKind, utcnow
from visiontrain.store.models import Annotation, Concept, Image, View, ViewImage


@dataclass
class AnnotationState:
    """One image in one view: annotated or not, its concepts (or boxes) and its fixed split."""

    image_id: int
    annotated: bool = False
    split: str | None = None
    concepts: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)


def _view_image(session: Session, view: View, image: Image) -> ViewImage:
    row = session.get(ViewImage, (view.id, image.id))
    if row is None:
        row = ViewImage(view_id=view.id, image_id=image.id, annotated=False)
        session.add(row)
    return row


def set_annotation(
    session: Session,
    *,
    view: View,
    image: Image,
    concept: str | None = None,
    concepts: list[str] | None = None,
    boxes: list[Box] | None = None,
    loc: tuple[str | int, ...] = ("body",),
    known_concepts: dict[str, Concept] | None = None,
    read_back: bool = True,
) -> AnnotationState | None:
    """Replace the image's annotation in the view with the one given (the field that fits the view's kind).

    An import of many images passes the view's concepts (``known_concepts``, looked up once instead of
    once per image) and ``read_back=False`` (nothing is returned: it does not read the annotation back).
    """
    kind = ViewKind(view.kind)
    expected = {ViewKind.classification: "concept", ViewKind.tagging: "concepts", ViewKind.detection: "boxes"}[kind]
    given = {"concept": concept, "concepts": concepts, "boxes": boxes}
    extra = [name for name, value in given.items() if value is not None and name != expected]
    if extra or given[expected] is None:
        raise InvalidInput(
            f"view {view.id} is a {kind.value} view: send {expected!r}"
            + (f" (not {', '.join(map(repr, extra))})" if extra else ""),
            loc=(*loc, extra[0] if extra else expected),
        )
    rows: list[Annotation] = []
    if kind == ViewKind.classification:
        known = _concepts(session, view, [concept], (*loc, "concept"), known_concepts)  # type: ignore[list-item]
        rows = [Annotation(view_id=view.id, image_id=image.id, concept_id=known[concept].id)]  # type: ignore[index]
    elif kind == ViewKind.tagging:
        names = list(dict.fromkeys(concepts or []))
        known = _concepts(session, view, names, (*loc, "concepts"), known_concepts)
        rows = [Annotation(view_id=view.id, image_id=image.id, concept_id=known[n].id) for n in names]
    else:
        known = _concepts(session, view, sorted({b.concept for b in boxes or []}), (*loc, "boxes"), known_concepts)
        for index, box in enumerate(boxes or []):
            _check_box(box, image, loc=(*loc, "boxes", index))
            rows.append(
                Annotation(
                    view_id=view.id,
                    image_id=image.id,
                    concept_id=known[box.concept].id,
                    x_min=box.x_min,
                    y_min=box.y_min,
                    x_max=box.x_max,
                    y_max=box.y_max,
                )
            )
    session.execute(delete(Annotation).where(Annotation.view_id == view.id, Annotation.image_id == image.id))
    session.add_all(rows)
    view_image = _view_image(session, view, image)
    view_image.annotated = True
    view_image.updated_at = utcnow()
    session.flush()
    return get_annotation(session, view=view, image=image) if read_back else None


def _concepts(
    session: Session, view: View, names: list[str], loc: tuple[str | int, ...], known: dict[str, Concept] | None
) -> dict[str, Concept]:
    """The concepts named, from ``known`` when every name is there, else from the database (which names
    what is missing)."""
    if known is not None and all(name in known for name in names):
        return {name: known[name] for name in names}
    return concepts_by_name(session, view=view, names=names, loc=loc)


def _check_box(box: Box, image: Image, *, loc: tuple[str | int, ...]) -> None:
    if not (0 <= box.x_min < box.x_max <= image.width and 0 <= box.y_min < box.y_max <= image.height):
        raise InvalidInput(
            f"box ({box.x_min:g}, {box.y_min:g}, {box.x_max:g}, {box.y_max:g}) is not inside the "
            f"{image.width}x{image.height} image with x_min < x_max and y_min < y_max",
            loc=loc,
        )


def clear_annotation(session: Session, *, view: View, image: Image) -> AnnotationState:
    """The image goes back to "not annotated" in this view (its fixed split is kept)."""
    session.execute(delete(Annotation).where(Annotation.view_id == view.id, Annotation.image_id == image.id))
    view_image = session.get(ViewImage, (view.id, image.id))
    if view_image is not None:
        view_image.annotated = False
    session.flush()
    return get_annotation(session, view=view, image=image)


def get_annotation(session: Session, *, view: View, image: Image) -> AnnotationState:
    return annotation_states(session, view=view, image_ids=[image.id])[image.id]


def annotation_states(session: Session, *, view: View, image_ids: list[int]) -> dict[int, AnnotationState]:
    states = {image_id: AnnotationState(image_id=image_id) for image_id in image_ids}
    for row in session.scalars(select(ViewImage).where(ViewImage.view_id == view.id, ViewImage.image_id.in_(image_ids))):
        states[row.image_id].annotated = row.annotated
        states[row.image_id].split = row.split
    rows = session.execute(
        select(Annotation, Concept.name)
        .join(Concept, Concept.id == Annotation.concept_id)
        .where(Annotation.view_id == view.id, Annotation.image_id.in_(image_ids))
        .order_by(Annotation.id)
    )
    for annotation, name in rows:
        state = states[annotation.image_id]
        if annotation.x_min is None:
            state.concepts.append(name)
        else:
            state.boxes.append(Box(name, annotation.x_min, annotation.y_min, annotation.x_max, annotation.y_max))  # type: ignore[arg-type]
    return states


def set_split(session: Session, *, view: View, images: list[Image], split: Split | None) -> int:
    """Fix images to the training or validation set (None: the split setting decides again)."""
    for image in images:
        _view_image(session, view, image).split = Split(split).value if split is not None else None
    session.flush()
    return len(images)
