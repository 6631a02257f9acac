from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Response, UploadFile, status

from visiontrain.api import uploads
from visiontrain.api.deps import BlobsDep, OrgDep, PlatformDep, ProjectDep, SessionDep
from visiontrain.api.schemas.annotations import AnnotationPublic
from visiontrain.api.schemas.common import MAX_ID, DuplicateFile, IdPath, Offset, Page, Rejected, errors
from visiontrain.api.schemas.images import ImagePublic, UploadResult
from visiontrain.services import annotations as annotation_service
from visiontrain.services import images as service
from visiontrain.services import imports, splits
from visiontrain.services.errors import InvalidInput
from visiontrain.services.images import AddedImages
from visiontrain.services.views import get_view
from visiontrain.store.base import Split

router = APIRouter(prefix="/projects/{project_id}/images", tags=["images"])


def _result(added: AddedImages) -> UploadResult:
    return UploadResult(
        created=added.created,
        duplicates=added.duplicates,
        images=[ImagePublic.model_validate(i) for i in added.images],
        rejected=[Rejected(name=n, reason=r) for n, r in added.rejected],
        duplicate_files=[DuplicateFile.model_validate(d, from_attributes=True) for d in added.duplicate_files],
    )


@router.post(
    "",
    response_model=UploadResult,
    status_code=status.HTTP_201_CREATED,
    summary="Upload one or more images (all or nothing)",
    responses=errors(400, 404, 413),
    description="Multipart field `files`, repeated. Any file that is not a usable image (not an image, corrupt, "
    "truncated, too large) fails the request with 400 naming it, and nothing is stored. The same bytes uploaded "
    "again return the existing image.",
)
def upload_images(
    files: Annotated[list[UploadFile], File(description="Image files (JPEG, PNG, WebP, BMP, GIF, TIFF)")],
    project: ProjectDep,
    session: SessionDep,
    blobs: BlobsDep,
    platform: PlatformDep,
) -> UploadResult:
    limit = platform.config.max_upload_mb
    payload = [uploads.read_upload(f, limit_mb=limit, index=i) for i, f in enumerate(files)]
    added = service.add_images(
        session, blobs=blobs, project=project, files=payload, max_pixels=platform.config.max_image_pixels
    )
    session.commit()
    return _result(added)


@router.post(
    "/archive",
    response_model=UploadResult,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a zip or tar archive of images (unannotated)",
    responses=errors(400, 404, 413),
    description="Unsafe archives (path traversal, links, zip bombs) are refused with 400. Entries that are not "
    "usable images are listed in `rejected`; the others are added. To import annotations too, use "
    "POST /views/{view_id}/import.",
)
def upload_archive(
    file: Annotated[UploadFile, File(description="A .zip or .tar (.tar.gz, .tar.bz2, .tar.xz) archive")],
    project: ProjectDep,
    session: SessionDep,
    blobs: BlobsDep,
    platform: PlatformDep,
) -> UploadResult:
    workdir = uploads.temporary_directory(platform.config)
    try:
        path = uploads.save_upload(file, workdir, limit_mb=platform.config.max_upload_mb)
        added = imports.add_image_archive(
            session, blobs=blobs, project=project, archive=path, filename=uploads.upload_name(file, "archive.zip"),
            max_pixels=platform.config.max_image_pixels,
        )
        session.commit()
        return _result(added)
    finally:
        uploads.remove(workdir)


@router.get("", response_model=Page[ImagePublic], summary="List images, filtered and paged", responses=errors(404))
def list_images(
    project: ProjectDep,
    session: SessionDep,
    organization_id: OrgDep,
    view_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Needed by the filters below; adds each image's annotation")
    ] = None,
    concept_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only images annotated with this concept")] = None,
    unannotated: Annotated[bool | None, Query(description="true: not yet annotated in the view; false: annotated")] = None,
    split: Annotated[Literal["train", "val", "test"] | None, Query(description="Only images fixed to this side")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Page[ImagePublic]:
    view = get_view(session, organization_id=organization_id, view_id=view_id) if view_id is not None else None
    if view is not None and view.project_id != project.id:
        raise InvalidInput(f"view {view_id} belongs to another project", loc=("query", "view_id"))
    items, total = service.list_images(
        session,
        project=project,
        view=view,
        concept_id=concept_id,
        unannotated=unannotated,
        split=Split(split) if split else None,
        offset=offset,
        limit=limit,
    )
    public = [ImagePublic.model_validate(i) for i in items]
    if view is not None:
        ids = [i.id for i in items]
        states = annotation_service.annotation_states(session, view=view, image_ids=ids)
        sides = splits.sides(session, view=view, image_ids=ids)
        public = [
            p.model_copy(update={"annotation": AnnotationPublic.model_validate(states[p.id]), "side": sides[p.id]}) for p in public
        ]
    return Page[ImagePublic](items=public, total=total, offset=offset, limit=limit)


@router.get("/{image_id}", response_model=ImagePublic, responses=errors(404))
def get_image(image_id: IdPath, project: ProjectDep, session: SessionDep) -> ImagePublic:
    return ImagePublic.model_validate(service.get_image(session, project=project, image_id=image_id))


@router.get(
    "/{image_id}/content",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "The image's original bytes"}, **errors(404)},
    summary="The image file as uploaded, or a JPEG thumbnail with max_side",
    description="`max_side` is rounded up to the next stored thumbnail size (128, 256, 512 or 1024).",
)
def get_image_content(
    image_id: IdPath,
    project: ProjectDep,
    session: SessionDep,
    blobs: BlobsDep,
    max_side: Annotated[int | None, Query(ge=16, le=1024, description="Longest side of a JPEG thumbnail (default: the original file)")] = None,
) -> Response:
    image = service.get_image(session, project=project, image_id=image_id)
    session.close()
    # Content-addressed: the bytes behind this URL never change.
    if max_side is not None:
        max_side = service.thumbnail_side(max_side)
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{image.sha256}-{max_side or 0}"'}
    if max_side is None:
        return Response(service.image_bytes(blobs=blobs, image=image), media_type=image.content_type, headers=headers)
    return Response(service.thumbnail_bytes(blobs=blobs, image=image, max_side=max_side), media_type="image/jpeg", headers=headers)


@router.delete(
    "/{image_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove an image and its annotations", responses=errors(404, 409)
)
def delete_image(image_id: IdPath, project: ProjectDep, session: SessionDep, blobs: BlobsDep) -> None:
    image = service.get_image(session, project=project, image_id=image_id)
    unused = service.delete_image(session, image=image)
    session.commit()
    service.remove_blobs(blobs=blobs, keys=unused)
