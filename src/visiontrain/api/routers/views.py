from __future__ import annotations

from fastapi import APIRouter, status

from visiontrain.api.deps import ProjectDep, SessionDep, ViewDep
from visiontrain.api.schemas.common import IdPath, errors
from visiontrain.api.schemas.views import (
    ConceptCreate,
    ConceptPublic,
    ResplitRequest,
    ViewCreate,
    ViewPublic,
    ViewSplit,
    ViewUpdate,
)
from visiontrain.services import splits
from visiontrain.services import views as service
from visiontrain.store.models import View

router = APIRouter(tags=["views"])


def present(session, view: View) -> ViewPublic:  # type: ignore[no-untyped-def]
    counts = service.view_counts(session, view=view)
    session.refresh(view, ["concepts"])
    return ViewPublic(
        id=view.id,
        project_id=view.project_id,
        name=view.name,
        kind=view.kind,  # type: ignore[arg-type]
        created_at=view.created_at,
        concepts=[c.name for c in view.concepts],
        **counts,
    )


@router.post("/projects/{project_id}/views", response_model=ViewPublic, status_code=status.HTTP_201_CREATED,
             summary="Create a view: one task (classification, tagging or detection) on the project's images",
             responses=errors(404, 409))
def create_view(body: ViewCreate, project: ProjectDep, session: SessionDep) -> ViewPublic:
    view = service.create_view(session, project=project, name=body.name, kind=body.kind, concepts=body.concepts)
    session.commit()
    return present(session, view)


@router.get("/projects/{project_id}/views", response_model=list[ViewPublic], responses=errors(404))
def list_views(project: ProjectDep, session: SessionDep) -> list[ViewPublic]:
    return [present(session, v) for v in service.list_views(session, project=project)]


@router.get("/views/{view_id}", response_model=ViewPublic, responses=errors(404))
def get_view(view: ViewDep, session: SessionDep) -> ViewPublic:
    return present(session, view)


@router.patch("/views/{view_id}", response_model=ViewPublic, summary="Rename a view (its kind never changes)",
              responses=errors(404, 409))
def rename_view(body: ViewUpdate, view: ViewDep, session: SessionDep) -> ViewPublic:
    service.rename_view(session, view=view, name=body.name)
    session.commit()
    return present(session, view)


@router.delete("/views/{view_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a view with its concepts, annotations, models and versions (images stay)",
               responses=errors(404, 409))
def delete_view(view: ViewDep, session: SessionDep) -> None:
    service.delete_view(session, view=view)
    session.commit()


# --- the view's validation split


@router.get("/views/{view_id}/split", response_model=ViewSplit, tags=["split"],
            summary="The view's validation split: sides per image count and per concept, and its warnings",
            responses=errors(404))
def get_split(view: ViewDep, session: SessionDep) -> ViewSplit:
    return ViewSplit(**splits.split_state(session, view=view, persist=False).summary(view))


@router.post(
    "/views/{view_id}/split/resplit",
    response_model=ViewSplit,
    tags=["split"],
    summary="Split the view's images afresh (new fraction or seed); the only action that moves images between sides",
    description="Versions made before keep the split they were judged on (their `data_split.generation`); "
    "versions made after are judged on the new one. Images fixed by the user keep their side.",
    responses=errors(404, 409),
)
def resplit(view: ViewDep, session: SessionDep, body: ResplitRequest | None = None) -> ViewSplit:
    body = body or ResplitRequest()
    state = splits.resplit(session, view=view, fraction=body.validation_split, seed=body.seed)
    session.commit()
    return ViewSplit(**state.summary(view))


# --- concepts


def present_concept(concept, count: int) -> ConceptPublic:  # type: ignore[no-untyped-def]
    return ConceptPublic.model_validate(concept).model_copy(update={"image_count": count})


@router.post("/views/{view_id}/concepts", response_model=ConceptPublic, status_code=status.HTTP_201_CREATED, tags=["concepts"],
             responses=errors(404, 409))
def create_concept(body: ConceptCreate, view: ViewDep, session: SessionDep) -> ConceptPublic:
    concept = service.create_concept(session, view=view, name=body.name)
    session.commit()
    return present_concept(concept, 0)


@router.get("/views/{view_id}/concepts", response_model=list[ConceptPublic], tags=["concepts"], responses=errors(404))
def list_concepts(view: ViewDep, session: SessionDep) -> list[ConceptPublic]:
    return [present_concept(c, n) for c, n in service.list_concepts(session, view=view)]


@router.patch("/views/{view_id}/concepts/{concept_id}", response_model=ConceptPublic, tags=["concepts"],
              responses=errors(404, 409))
def rename_concept(concept_id: IdPath, body: ConceptCreate, view: ViewDep, session: SessionDep) -> ConceptPublic:
    concept = service.rename_concept(session, concept=service.get_concept(session, view=view, concept_id=concept_id), name=body.name)
    session.commit()
    counts = dict((c.id, n) for c, n in service.list_concepts(session, view=view))
    return present_concept(concept, counts.get(concept.id, 0))


@router.delete("/views/{view_id}/concepts/{concept_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["concepts"],
               summary="Delete a concept and its annotations (409 while a model uses it)", responses=errors(404, 409))
def delete_concept(concept_id: IdPath, view: ViewDep, session: SessionDep) -> None:
    service.delete_concept(session, concept=service.get_concept(session, view=view, concept_id=concept_id))
    session.commit()
