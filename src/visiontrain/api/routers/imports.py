from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from visiontrain.api import uploads
from visiontrain.api.deps import BlobsDep, PlatformDep, SessionDep, ViewDep
from visiontrain.api.schemas.common import DuplicateFile, Rejected, errors
from visiontrain.api.schemas.views import ImportFormat, ImportResult
from visiontrain.services import imports as service
from visiontrain.services.errors import InvalidInput

router = APIRouter(prefix="/views/{view_id}/import", tags=["import"])


@router.get("/formats", response_model=list[ImportFormat], summary="Dataset formats that can feed this view", responses=errors(404))
def formats(view: ViewDep) -> list[ImportFormat]:
    return [ImportFormat(**f) for f in service.known_formats(view.kind)]


@router.post(
    "",
    response_model=ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Import an annotated dataset (zip or tar) into the view",
    responses=errors(400, 404, 409, 413),
    description="ImageFolder, CSV, COCO, YOLO or Pascal VOC, detected from the layout unless `format` is given. "
    "Images join the project (deduplicated by content), missing concepts are created, annotations and "
    "train/val splits are set in this view. Unsafe or unreadable archives are refused with 400.",
)
def import_dataset(
    file: Annotated[UploadFile, File(description="A .zip or .tar (.tar.gz, .tar.bz2, .tar.xz) archive of the dataset")],
    view: ViewDep,
    session: SessionDep,
    blobs: BlobsDep,
    platform: PlatformDep,
    format: Annotated[  # noqa: A002
        str | None, Form(max_length=40, description="imagefolder, csv, coco, yolo or voc (default: detect)")
    ] = None,
) -> ImportResult:
    if format and "\x00" in format:
        raise InvalidInput("must not contain NUL characters", loc=("body", "format"))
    filename = uploads.upload_name(file, "archive.zip")
    workdir = uploads.temporary_directory(platform.config)
    try:
        path = uploads.save_upload(file, workdir, limit_mb=platform.config.max_upload_mb)
        try:
            report = service.import_annotated(
                session, blobs=blobs, view=view, source=path, filename=filename, format_name=format or None,
                max_pixels=platform.config.max_image_pixels,
            )
        except InvalidInput as exc:
            if exc.loc and exc.loc[0] == "body" and exc.loc[1:2] != ["format"]:
                # A name read from the archive (a class folder, a label) is not a field of this request's body.
                raise InvalidInput(f"{filename}: {exc.message}", loc=("body", "file")) from None
            raise
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
        duplicate_files=[DuplicateFile.model_validate(d, from_attributes=True) for d in report.duplicate_files],
    )
