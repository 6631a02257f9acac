"""Download a view's annotations as a dataset: ``GET /views/{view_id}/export?format=coco|yolo|voc|csv``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from visiontrain.api import uploads
from visiontrain.api.deps import BlobsDep, PlatformDep, SessionDep, ViewDep
from visiontrain.api.schemas.common import errors
from visiontrain.services import annotation_exports as service
from visiontrain.services.errors import InvalidInput

router = APIRouter(prefix="/views/{view_id}/export", tags=["export"])


class ExportFormat(BaseModel):
    name: str = Field(description="The value of `format` for `GET /views/{view_id}/export`.")
    title: str
    layout: str = Field(description="What the zip holds.")


@router.get("/formats", response_model=list[ExportFormat], summary="Dataset formats this view can be exported as",
            responses=errors(404))
def formats(view: ViewDep) -> list[ExportFormat]:
    return [ExportFormat(**f) for f in service.export_formats(view.kind)]


@router.get(
    "",
    response_class=FileResponse,
    summary="Download the view's annotations as a dataset (zip): COCO, YOLO or Pascal VOC (detection), CSV (any view)",
    description="Every image annotated in the view (with no object or without concept too) with its annotation, "
    "the view's concepts in order, and each image's side in the view's split (as `GET /views/{view_id}/split` gives "
    "it; nothing is stored). Layouts: **coco** `annotations/instances_<split>.json` + `images/<split>/`; **yolo** "
    "`data.yaml` + `images/<split>/` + `labels/<split>/` (an empty label file: no object); **voc** `JPEGImages/`, "
    "`Annotations/*.xml`, `ImageSets/Main/{train,val,trainval,test}.txt`; **csv** `labels.csv` (classification, "
    "tagging) or `<split>_labels.csv` (detection) + `images/`. Images not annotated in the view are left out; "
    "the headers `X-Export-Images`, `X-Export-Boxes` and `X-Export-Unannotated` count them. Importing the zip "
    "(`POST /views/{view_id}/import`) gives back the same annotations and sides.",
    responses={200: {"content": {"application/zip": {}}, "description": "The dataset as a zip file"}, **errors(404, 409)},
)
def export_annotations(
    view: ViewDep,
    session: SessionDep,
    blobs: BlobsDep,
    platform: PlatformDep,
    format: Annotated[  # noqa: A002 - the name users know
        str, Query(min_length=1, max_length=40, description="coco, yolo or voc (detection views), csv (any view)")
    ],
) -> FileResponse:
    if "\x00" in format:
        raise InvalidInput("must not contain NUL characters", loc=("query", "format"))
    name = service.check_format(view=view, format_name=format)
    workdir = uploads.temporary_directory(platform.config)
    try:
        described = service.view_dataset(session, blobs=blobs, view=view, scratch=workdir / "images")
        filename = service.download_name(view, name)
        session.close()  # writing the zip must not hold a database connection
        export = service.write_export(described, format_name=name, directory=workdir, filename=filename)
    except BaseException:
        uploads.remove(workdir)
        raise
    return FileResponse(
        export.path,
        media_type="application/zip",
        filename=export.filename,
        headers={
            "X-Export-Images": str(export.result.images),
            "X-Export-Boxes": str(export.result.boxes),
            "X-Export-Unannotated": str(export.unannotated + export.result.left_out),
        },
        background=BackgroundTask(uploads.remove, workdir),
    )
