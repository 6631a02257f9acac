"""The experiment assistant on a view: settings suggested from its data, and "find the learning rate for me".

Neither changes anything nor trains a model: the suggestion is a pure function of the view's counts; the
range test trains a throwaway head for a few seconds on cached features (the server's feature cache,
so the next version reuses them).
"""

from __future__ import annotations

from fastapi import APIRouter

from visiontrain.api.deps import PlatformDep, SessionDep, ViewDep
from visiontrain.api.schemas.assistant import AssistantRequest, LrFindPublic, LrFindRequest, SuggestionPublic
from visiontrain.api.schemas.common import errors
from visiontrain.services import assistant as service

router = APIRouter(tags=["settings"])


@router.post(
    "/views/{view_id}/suggested-settings",
    response_model=SuggestionPublic,
    summary="Training settings suited to the view's annotated images, each with its reason; changes nothing",
    description="Counts the images per concept on each side of the split the next version would train on (the view's "
    "stored split or the validation images fixed by the user: untouched) and applies the rules of `visiontrain suggest`.",
    responses=errors(404),
)
def suggested_settings(body: AssistantRequest, view: ViewDep, session: SessionDep) -> SuggestionPublic:
    values = body.settings.model_dump(exclude_unset=True)
    suggestion = service.suggest_for_view(session, view=view, concepts=body.concepts, values=values)
    return SuggestionPublic(**suggestion.as_dict())


@router.post(
    "/views/{view_id}/lr-find",
    response_model=LrFindPublic,
    summary="Learning-rate range test on the view's training images: the suggested rate, its rule and the curve",
    description="A fresh head trained for `steps` mini-batches at rates rising from 1e-6 to 1 over the backbone's cached "
    "features (computed once into the server's feature cache). Classification and tagging; a detection view is refused "
    "(422), as the engine refuses it. One test at a time per server (409 while another runs).",
    responses=errors(404, 409),
)
def lr_find(body: LrFindRequest, view: ViewDep, session: SessionDep, platform: PlatformDep) -> LrFindPublic:
    values = body.settings.model_dump(exclude_unset=True)
    result = service.find_learning_rate_for_view(session, platform=platform, view=view, concepts=body.concepts,
                                                 values=values, steps=body.steps)
    return LrFindPublic(**{name: result[name] for name in LrFindPublic.model_fields})
