from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from visiontrain.api import uploads
from visiontrain.api.deps import BlobsDep, PlatformDep, SessionDep, ViewDep
from visiontrain.api.schemas.common import Rejected
from visiontrain.api.schemas.views import ImportFormat, ImportResult
from visiontrain.services import imports as service

router = APIRouter(prefix="/views/{view_id}/import", tags=["import"])


@router.get("/formats", response_model=list[ImportFormat], summary="Dataset formats that can feed this view")
def formats(view: ViewDep) -> list[ImportFormat]:
    return [ImportFormat(**f) for f in service.known_formats(view.kind)]


@router.post(
    "",
    response_model=ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Import an annotated dataset (zip) into the view",
    description="ImageFolder, CSV, COCO, YOLO or Pascal VOC, detected from the layout unless `format` is given. "
    "Images join the project (deduplicated by content), missing concepts are created, annotations and "
    "train/val splits are set in this view. Unsafe or unreadable archives are refused with 400.",
)
def import_dataset(
    file: Annotated[UploadFile, File(description="A .zip archive of the dataset")],
    view: ViewDep,
    session: SessionDep,
    blobs: BlobsDep,
    platform: PlatformDep,
    format: Annotated[str | None, Form(description="imagefolder, csv, coco, yolo or voc (default: detect)")] = None,  # noqa: A002
) -> ImportResult:
    workdir = uploads.temporary_directory()
    try:
        path = uploads.save_upload(file, workdir, limit_mb=platform.config.max_upload_mb)
        report = service.import_annotated(
            session, blobs=blobs, view=view, source=path, filename=file.filename or "archive.zip", format_name=format or None
        )
        session.commit()
    finally:
        uploads.remove(workdir)
    return ImportResult(
        format=report.format,
        images=report.images,
        created=report.created,
        duplicates=report.duplicates,
        annotated=report.annotated,
        concepts_created=report.concepts_created,
        rejected=[Rejected(name=n, reason=r) for n, r in report.rejected],
        warnings=report.warnings,
        summary=report.summary,
    )
