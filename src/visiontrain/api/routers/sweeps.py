from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from pydantic import ValidationError

from visiontrain.api.deps import ModelDep, OrgDep, PlatformDep, SessionDep
from visiontrain.api.schemas.common import MAX_ID, errors
from visiontrain.api.schemas.sweeps import SweepCreate, SweepPublic
from visiontrain.services import sweeps as service
from visiontrain.services.errors import InvalidInput
from visiontrain.services.platform import Platform
from visiontrain.settings import format_validation_error
from visiontrain.store.models import Sweep
from visiontrain.tasks import get_task
from visiontrain.training.sweep import space_for

router = APIRouter(tags=["sweeps"])


def get_sweep(sweep_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, organization_id: OrgDep) -> Sweep:
    return service.get_sweep(session, organization_id=organization_id, sweep_id=sweep_id)


SweepDep = Annotated[Sweep, Depends(get_sweep)]


def present(sweep: Sweep, platform: Platform, *, with_results: bool = True) -> SweepPublic:
    task = sweep.model.view.kind
    return SweepPublic(
        id=sweep.id, model_id=sweep.model_id, status=sweep.status, error=sweep.error, trials=sweep.trials,
        trials_started=sweep.trials_started, seed=sweep.seed, settings=sweep.settings, created_at=sweep.created_at,
        started_at=sweep.started_at, finished_at=sweep.finished_at, best_version_id=sweep.best_version_id,
        monitor=get_task(task).monitor, searched=[d.name for d in space_for(task)],
        results=service.trials_of(platform.config, sweep) if with_results else [],
    )


@router.post(
    "/models/{model_id}/sweeps", response_model=SweepPublic, status_code=status.HTTP_201_CREATED,
    summary="Try N variations: a sweep of head settings on cached features, the best becoming a version",
    description="Workers run the trials (several workers share one sweep); each trains a head on the same cached "
    "features with other settings (learning rate, optimizer, head layers and units, dropout, weight decay, augmented "
    "copies, class balance, label smoothing) and bad ones are pruned early. When the last has finished, the best "
    "trial's settings are queued as a normal version of the model (`best_version_id`). Detection is refused (422).",
    responses=errors(404),
)
def create_sweep(body: SweepCreate, model: ModelDep, session: SessionDep, platform: PlatformDep) -> SweepPublic:
    try:
        settings = body.settings_for(model.view.kind)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc), loc=("body", "settings")) from None
    sweep = service.create_sweep(session, model=model, settings=settings, trials=body.trials, seed=body.seed)
    session.commit()
    return present(sweep, platform, with_results=False)


@router.get("/models/{model_id}/sweeps", response_model=list[SweepPublic], summary="The model's sweeps, newest first",
            responses=errors(404))
def list_sweeps(model: ModelDep, session: SessionDep, platform: PlatformDep) -> list[SweepPublic]:
    return [present(s, platform) for s in service.list_sweeps(session, model=model)]


@router.get("/sweeps/{sweep_id}", response_model=SweepPublic, summary="A sweep with its trials so far, ranked", responses=errors(404))
def get_sweep_route(sweep: SweepDep, platform: PlatformDep) -> SweepPublic:
    return present(sweep, platform)


@router.post("/sweeps/{sweep_id}/cancel", response_model=SweepPublic,
             summary="Cancel: no more trials start, running ones stop within seconds, no version is made", responses=errors(404, 409))
def cancel_sweep(sweep: SweepDep, session: SessionDep, platform: PlatformDep) -> SweepPublic:
    service.cancel_sweep(session, sweep=sweep)
    session.commit()
    return present(sweep, platform)
