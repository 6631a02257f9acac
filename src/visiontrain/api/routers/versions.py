from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Header, Path, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError

from visiontrain.api import uploads
from visiontrain.api.blob_responses import blob_download
from visiontrain.api.deps import (
    BlobsDep,
    ModelDep,
    PlatformDep,
    PredictorsDep,
    SecretDep,
    SessionDep,
    VersionDep,
    verify_secret,
)
from visiontrain.api.schemas.advice import AdviceReportPublic
from visiontrain.api.schemas.common import MAX_ID, Offset, errors
from visiontrain.api.schemas.training import (
    ArtifactPublic,
    Headline,
    MetricPublic,
    Prediction,
    SamplePublic,
    VersionCreate,
    VersionPublic,
    VersionSummary,
)
from visiontrain.services import predictions
from visiontrain.services.advice import version_advice
from visiontrain.services.errors import InvalidInput
from visiontrain.settings import format_validation_error
from visiontrain.services import versions as service
from visiontrain.services.images import remove_blobs
from visiontrain.store.base import VersionStatus
from visiontrain.store.models import ModelVersion

router = APIRouter(tags=["versions"])

ArtifactKind = Literal["checkpoint", "onnx", "confusion_matrix", "pr_curves", "detections", "test_evaluation",
                       "test_confusion_matrix", "test_pr_curves", "test_detections"]
_DOWNLOAD_NAMES = {"checkpoint": "best.pt", "onnx": "model.onnx", "confusion_matrix": "confusion_matrix.png",
                   "pr_curves": "pr_curves.png", "test_evaluation": "test-evaluation.json",
                   "test_confusion_matrix": "test-confusion_matrix.png", "test_pr_curves": "test-pr_curves.png",
                   "detections": "detections.png", "test_detections": "test-detections.png"}
STREAM_POLL_SECONDS = 0.5


def summarize(version: ModelVersion) -> VersionSummary:
    headline = service.headline_metric(version)
    return VersionSummary.model_validate(version).model_copy(update={"headline": Headline(**headline) if headline else None})


def present(version: ModelVersion) -> VersionPublic:
    base = summarize(version)
    return VersionPublic(
        **base.model_dump(),
        settings=version.settings,
        timings=version.timings,
        best_epoch=version.best_epoch,
        best_stage=version.best_stage,
        best_metrics=version.best_metrics,
        summary=version.summary,
        evaluation=version.evaluation,
        data_split=version.data_split,
        artifacts=[
            ArtifactPublic(kind=a.kind, size_bytes=a.size_bytes, url=f"/api/v1/versions/{version.id}/artifacts/{a.kind}")
            for a in version.artifacts
        ],
    )


@router.post(
    "/models/{model_id}/versions",
    response_model=VersionPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Queue a training run of the model",
    description="The body's `settings` is partial: the view's task's defaults fill the rest (GET /api/v1/settings/schema?task=...). Bad "
    "settings are a 422 naming each field (`loc`: body.settings.<field>). The version trains on a snapshot of "
    "the view's annotations taken now; a worker picks it up within a second or two.",
    responses=errors(404, 409),
)
def create_version(body: VersionCreate, model: ModelDep, session: SessionDep) -> VersionPublic:
    try:
        settings = body.settings_for(model.view.kind)
    except ValidationError as exc:  # a rule between fields (the fields themselves were checked on arrival)
        raise InvalidInput(format_validation_error(exc), loc=("body", "settings")) from None
    version = service.create_version(session, model=model, settings=settings, name=body.name)
    session.commit()
    return present(version)


@router.get("/models/{model_id}/versions", response_model=list[VersionSummary], summary="Versions with status and headline metric",
            responses=errors(404))
def list_versions(model: ModelDep, session: SessionDep) -> list[VersionSummary]:
    return [summarize(v) for v in service.list_versions(session, model=model)]


@router.get("/versions/{version_id}", response_model=VersionPublic, summary="Everything about a version", responses=errors(404))
def get_version(version: VersionDep) -> VersionPublic:
    return present(version)


@router.post("/versions/{version_id}/cancel", response_model=VersionPublic,
             summary="Cancel: a queued version at once, a running one within seconds (its best checkpoint so far is kept)",
             responses=errors(404, 409))
def cancel_version(version: VersionDep, session: SessionDep) -> VersionPublic:
    service.cancel_version(session, version=version)
    session.commit()
    return present(version)


@router.delete("/versions/{version_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a finished version",
               responses=errors(404, 409))
def delete_version(version: VersionDep, session: SessionDep, blobs: BlobsDep) -> None:
    keys = service.delete_version(session, version=version)
    session.commit()
    remove_blobs(blobs=blobs, keys=keys)


@router.get("/versions/{version_id}/samples", response_model=list[SamplePublic], summary="The exact images and labels it trained on",
            responses=errors(404))
def list_samples(version: VersionDep, session: SessionDep) -> list[SamplePublic]:
    return [SamplePublic.model_validate(s) for s in service.version_samples(session, version=version)]


@router.get("/versions/{version_id}/metrics", response_model=list[MetricPublic], summary="Metrics history (JSON)",
            responses=errors(404))
def list_metrics(
    version: VersionDep,
    session: SessionDep,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID, description="Only rows with a larger id")] = 0,
    kind: Annotated[
        list[Literal["batch", "epoch", "stage", "features", "status"]] | None,
        Query(description="batch, epoch, stage, features, status (repeatable)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[MetricPublic]:
    rows = service.version_metrics(session, version=version, after_id=after_id, kinds=kind, limit=limit)
    return [MetricPublic.model_validate(r) for r in rows]


@router.get("/versions/{version_id}/advice", response_model=AdviceReportPublic, summary="What to try next, from the run's curves",
            description="Each finding (overfitting, a learning rate too high or too low, confused concepts, imbalance, too few "
            "validation images, ...) with its evidence in numbers and the settings to change for the next version. A version "
            "that has not finished gets no items and the reason.", responses=errors(404))
def get_advice(version: VersionDep, session: SessionDep) -> AdviceReportPublic:
    return AdviceReportPublic.model_validate(version_advice(session, version=version).to_dict())


@router.get(
    "/versions/{version_id}/events",
    response_class=EventSourceResponse,
    summary="Live metrics as server-sent events",
    description="Each stored metric row is one event (`event:` its kind, `id:` its row id, `data:` the row as in "
    "/metrics). Reconnecting with `Last-Event-ID` (or `after_id`) resumes without repeats. When the version "
    "has finished, a last `end` event carries its status and the stream closes.",
    responses=errors(401, 404, 422, 429, 503, media_type="application/json"),
)
async def stream_events(
    version: VersionDep,
    session: SessionDep,
    platform: PlatformDep,
    request: Request,
    after_id: Offset = 0,
    last_event_id: Annotated[str | None, Header(max_length=19)] = None,
) -> AsyncIterator[ServerSentEvent]:
    version_id = version.id
    session.close()  # the stream polls with short sessions of its own
    cursor = int(last_event_id) if last_event_id and last_event_id.isascii() and last_event_id.isdigit() else after_id
    cursor = min(cursor, MAX_ID)

    def poll(after: int) -> tuple[list[MetricPublic], str]:
        with platform.sessions() as own:
            current = own.get(ModelVersion, version_id)
            rows = service.version_metrics(own, version=current, after_id=after, limit=1000)  # type: ignore[arg-type]
            return [MetricPublic.model_validate(r) for r in rows], current.status  # type: ignore[union-attr]

    while not await request.is_disconnected():
        rows, state = await run_in_threadpool(poll, cursor)
        for row in rows:
            cursor = row.id
            yield ServerSentEvent(data=row, event=row.kind, id=str(row.id))
        if not rows and VersionStatus(state).finished:
            yield ServerSentEvent(data={"version_id": version_id, "status": state}, event="end")
            return
        if not rows:
            await asyncio.sleep(STREAM_POLL_SECONDS)


@router.get(
    "/versions/{version_id}/artifacts/{kind}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(404)},
    summary="Download a file the version produced: checkpoint (best.pt), onnx (model.onnx), confusion_matrix, pr_curves or "
    "detections (PNG: validation images with predicted and true boxes); with a test split, test_evaluation (JSON) and "
    "test_confusion_matrix, test_pr_curves or test_detections (PNG)",
)
def download_artifact(kind: ArtifactKind, version: VersionDep, session: SessionDep, blobs: BlobsDep) -> Response:
    artifact = service.get_artifact(session, version=version, kind=kind)
    filename = f"{version.model.name}-{version.name}-{_DOWNLOAD_NAMES[kind]}".replace("/", "_")
    media = ("image/png" if kind.endswith(("confusion_matrix", "pr_curves", "detections"))
             else "application/json" if kind == "test_evaluation" else "application/octet-stream")
    return blob_download(blobs, artifact.blob_key, media_type=media, filename=filename)


@router.get("/versions/{version_id}/export/{kind}", response_class=FileResponse, include_in_schema=True,
            summary="Export the trained model: checkpoint (PyTorch) or onnx",
            responses={200: {"content": {"application/octet-stream": {}}}, **errors(404)})
def export(kind: Literal["checkpoint", "onnx"], version: VersionDep, session: SessionDep, blobs: BlobsDep) -> Response:
    return download_artifact(kind, version, session, blobs)


@router.post(
    "/versions/{version_id}/predict",
    summary="Labels and probabilities for one or more images",
    description=f"Multipart field `files`, repeated: one image or many (at most {predictions.MAX_IMAGES_PER_REQUEST} per "
    "request, a 422 beyond; all files together within the server's VISIONTRAIN_MAX_UPLOAD_MB, a 413 beyond). Results "
    "come in upload order, each with the file name and its predictions: classification, the top-k labels with "
    "probabilities; tagging, every concept with its probability, its threshold and whether it is on (`top_k` does not "
    "apply); detection, the boxes with the image's width and height. A file that is not a usable image is a 400 "
    "naming it. The images of concurrent requests (and the many images of one) are run through the model together, "
    "in batches; each image's result is the one it gets alone.",
    response_model=list[Prediction],
    responses=errors(400, 404, 409, 413),
)
async def predict(
    version_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    files: Annotated[list[UploadFile], File(description="Images to predict")],
    request: Request,
    secret: SecretDep,
    blobs: BlobsDep,
    platform: PlatformDep,
    predictors: PredictorsDep,
    top_k: Annotated[int, Query(ge=1, le=100)] = 5,
) -> list[Prediction]:
    # Everything that blocks in one hop to the thread pool: the token's check and the version lookup (one
    # session, closed before any image is read), reading the files, decoding, waiting for the batcher. As a
    # sync route with sync dependencies FastAPI hopped for the session, the token, the version, the route and
    # the response's validation, and under 8 concurrent clients each hop waited for a core: together the
    # largest part of a request (docs/benchmarks.md). A missing token, a cookie alone and a throttled address
    # are refused before that, and before any 422 (SecretDep); a token that does not verify is a 401 after the
    # request's own parameters are checked.
    def serve() -> list[Prediction]:
        with platform.sessions() as session:
            token = verify_secret(request, session, secret)
            version = service.get_version(session, organization_id=token.organization_id, version_id=version_id,
                                          serving=True)
        checkpoint = next((a for a in version.artifacts if a.kind == "checkpoint"), None)
        onnx = next((a for a in version.artifacts if a.kind == predictions.ONNX_KIND), None)
        predictions.require_ready(version, checkpoint)  # before any file is read
        if len(files) > predictions.MAX_IMAGES_PER_REQUEST:  # before any file is read
            raise InvalidInput(f"at most {predictions.MAX_IMAGES_PER_REQUEST} images per request (got {len(files)}); "
                               "send the rest in further requests", loc=("body", "files"))
        payload = [uploads.read_upload(f, limit_mb=platform.config.max_upload_mb, index=i) for i, f in enumerate(files)]
        results = predictions.predict(cache=predictors, blobs=blobs, version=version, checkpoint=checkpoint,
                                      files=payload, top_k=top_k, onnx=onnx, sessions=platform.sessions)
        return [Prediction(**r) for r in results]

    return await run_in_threadpool(serve)
