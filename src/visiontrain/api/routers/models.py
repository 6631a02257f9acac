from __future__ import annotations

from fastapi import APIRouter, status

from visiontrain.api.deps import BlobsDep, ModelDep, SessionDep, ViewDep
from visiontrain.api.schemas.common import errors
from visiontrain.api.schemas.training import ModelCreate, ModelPublic, ModelUpdate
from visiontrain.services import models as service
from visiontrain.services.images import remove_blobs
from visiontrain.store.models import Model

router = APIRouter(tags=["models"])


def present(model: Model) -> ModelPublic:
    return ModelPublic(
        id=model.id,
        view_id=model.view_id,
        name=model.name,
        concepts=[c.name for c in model.concepts],
        created_at=model.created_at,
        version_count=len(model.versions),
    )


@router.post("/views/{view_id}/models", response_model=ModelPublic, status_code=status.HTTP_201_CREATED,
             summary="Create a model: a named, fixed set of the view's concepts", responses=errors(404, 409))
def create_model(body: ModelCreate, view: ViewDep, session: SessionDep) -> ModelPublic:
    model = service.create_model(session, view=view, name=body.name, concepts=body.concepts)
    session.commit()
    return present(model)


@router.get("/views/{view_id}/models", response_model=list[ModelPublic], responses=errors(404))
def list_models(view: ViewDep, session: SessionDep) -> list[ModelPublic]:
    return [present(m) for m in service.list_models(session, view=view)]


@router.get("/models/{model_id}", response_model=ModelPublic, responses=errors(404))
def get_model(model: ModelDep) -> ModelPublic:
    return present(model)


@router.patch("/models/{model_id}", response_model=ModelPublic, summary="Rename a model (its concepts never change)",
              responses=errors(404, 409))
def rename_model(body: ModelUpdate, model: ModelDep, session: SessionDep) -> ModelPublic:
    service.rename_model(session, model=model, name=body.name)
    session.commit()
    return present(model)


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a model and its versions",
               responses=errors(404, 409))
def delete_model(model: ModelDep, session: SessionDep, blobs: BlobsDep) -> None:
    keys = service.delete_model(session, model=model)
    session.commit()
    remove_blobs(blobs=blobs, keys=keys)
