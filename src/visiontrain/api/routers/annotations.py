from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from visiontrain.api.deps import SessionDep, ViewDep
from visiontrain.api.schemas.annotations import AnnotationBatch, AnnotationPublic, AnnotationSet, SplitResult, SplitSet
from visiontrain.api.schemas.common import IdPath, Offset, Page, errors
from visiontrain.services import annotations as service
from visiontrain.services.errors import InvalidInput, NotFound
from visiontrain.services.images import get_image
from visiontrain.store.base import Split
from visiontrain.store.models import Image, View, ViewImage

router = APIRouter(prefix="/views/{view_id}", tags=["annotations"])


def _apply(session, view: View, image: Image, body: AnnotationSet, loc: tuple) -> service.AnnotationState:  # type: ignore[no-untyped-def,type-arg]
    boxes = [service.Box(**b.model_dump()) for b in body.boxes] if body.boxes is not None else None
    return service.set_annotation(
        session, view=view, image=image, concept=body.concept, concepts=body.concepts, boxes=boxes, loc=loc
    )


@router.get("/annotations", response_model=Page[AnnotationPublic], summary="Annotated images of the view, paged",
            responses=errors(404))
def list_annotations(
    view: ViewDep,
    session: SessionDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AnnotationPublic]:
    query = select(ViewImage.image_id).where(ViewImage.view_id == view.id, ViewImage.annotated.is_(True))
    ids = list(session.scalars(query.order_by(ViewImage.image_id).offset(offset).limit(limit)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    states = service.annotation_states(session, view=view, image_ids=ids)
    return Page[AnnotationPublic](
        items=[AnnotationPublic.model_validate(states[i]) for i in ids], total=total, offset=offset, limit=limit
    )


@router.get("/annotations/{image_id}", response_model=AnnotationPublic, responses=errors(404))
def get_annotation(image_id: IdPath, view: ViewDep, session: SessionDep) -> AnnotationPublic:
    image = get_image(session, project=view.project, image_id=image_id)
    return AnnotationPublic.model_validate(service.get_annotation(session, view=view, image=image))


@router.put(
    "/annotations/{image_id}",
    response_model=AnnotationPublic,
    summary="Set what an image shows in this view (replaces its previous annotation)",
    description="Classification: `{\"concept\": \"ants\"}`; tagging: `{\"concepts\": [\"cat\", \"dog\"]}` "
    "(`[]`: without concept); detection: `{\"boxes\": [{\"concept\": \"raccoon\", \"x_min\": 10, \"y_min\": 5, "
    "\"x_max\": 120, \"y_max\": 90}]}` (`[]`: no object). A field that does not fit the view's kind is a 422.",
    responses=errors(404),
)
def set_annotation(image_id: IdPath, body: AnnotationSet, view: ViewDep, session: SessionDep) -> AnnotationPublic:
    image = get_image(session, project=view.project, image_id=image_id)
    state = _apply(session, view, image, body, ("body",))
    session.commit()
    return AnnotationPublic.model_validate(state)


@router.delete("/annotations/{image_id}", response_model=AnnotationPublic, summary="Make an image unannotated again",
               responses=errors(404))
def clear_annotation(image_id: IdPath, view: ViewDep, session: SessionDep) -> AnnotationPublic:
    image = get_image(session, project=view.project, image_id=image_id)
    state = service.clear_annotation(session, view=view, image=image)
    session.commit()
    return AnnotationPublic.model_validate(state)


@router.post("/annotations/batch", response_model=list[AnnotationPublic], summary="Set many annotations at once (all or nothing)",
             description="Each item names an image of the view's project and, as for PUT /annotations/{image_id}, "
             "the one field that fits the view's kind. An unknown image or concept is a 422 naming the item.",
             responses=errors(404))
def set_annotations(body: AnnotationBatch, view: ViewDep, session: SessionDep) -> list[AnnotationPublic]:
    results = []
    for index, item in enumerate(body.items):
        try:
            image = get_image(session, project=view.project, image_id=item.image_id)
        except NotFound as exc:
            raise InvalidInput(exc.message, loc=("body", "items", index, "image_id")) from None
        results.append(AnnotationPublic.model_validate(_apply(session, view, image, item, ("body", "items", index))))
    session.commit()
    return results


@router.put("/split", response_model=SplitResult, summary="Fix images to the training or validation set (null: automatic)",
            description="`image_ids`: images of the view's project (distinct); an unknown one is a 422 naming it.",
            responses=errors(404))
def set_split(body: SplitSet, view: ViewDep, session: SessionDep) -> SplitResult:
    images = []
    for index, image_id in enumerate(body.image_ids):
        try:
            images.append(get_image(session, project=view.project, image_id=image_id))
        except NotFound as exc:
            raise InvalidInput(exc.message, loc=("body", "image_ids", index)) from None
    updated = service.set_split(session, view=view, images=images, split=Split(body.split) if body.split else None)
    session.commit()
    return SplitResult(updated=updated)
