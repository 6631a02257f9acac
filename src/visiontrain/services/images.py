"""Images of a project: validated, stored once by content hash, listed with filters."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from visiontrain.blobs import BlobStore
from visiontrain.data.errors import ImageError
from visiontrain.data.images import check_image as decode_check
from visiontrain.data.images import open_image
from visiontrain.services.db_helpers import insert_ignoring_duplicates
from visiontrain.services.errors import BadFile, InvalidInput, NotFound
from visiontrain.store.base import Split, utcnow
from visiontrain.store.models import Annotation, Image, Project, VersionSample, View, ViewImage

MAX_NAME_LENGTH = 500
# The server's default pixel limit (``ServerConfig.max_image_pixels``): a 50 MP photo decodes in
# ~150 MB at most (JPEGs at 1/8 scale while checking); beyond it a file is a bomb or not a photo.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# Thumbnails come in these sizes only: a requested max_side is rounded up to the next one, so that
# a client cannot make the server store one thumbnail per pixel size.
THUMBNAIL_SIZES = (128, 256, 512, 1024)


@dataclass(frozen=True)
class CheckedImage:
    """An upload that decoded: its bytes and what is recorded about it."""

    name: str
    data: bytes
    sha256: str
    width: int
    height: int
    extension: str
    content_type: str

    @property
    def blob_key(self) -> str:
        return f"images/{self.sha256[:2]}/{self.sha256}{self.extension}"


@dataclass(frozen=True)
class DuplicateFile:
    """A file whose bytes were already stored: it adds nothing new, and the person is told which image it is."""

    name: str
    image_id: int
    same_as: str  # the earlier file of this upload with these bytes, or the name the project knows the image by
    found_in: str  # "upload": an earlier file of the same upload (archive); "project": stored before this upload


class DuplicateTracker:
    """Names, for each file that turned out not to be new, the file or image it repeats."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}  # sha256 -> the first file of this upload with those bytes
        self.found: list[DuplicateFile] = []

    def note(self, name: str, image: Image, created: bool) -> None:
        earlier = self._first.get(image.sha256)
        self._first.setdefault(image.sha256, name)
        if created:
            return
        if earlier is not None:
            self.found.append(DuplicateFile(name=name, image_id=image.id, same_as=earlier, found_in="upload"))
        else:
            self.found.append(DuplicateFile(name=name, image_id=image.id, same_as=image.original_name, found_in="project"))


@dataclass
class AddedImages:
    images: list[Image] = field(default_factory=list)
    created: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicate_files: list[DuplicateFile] = field(default_factory=list)


def clean_filename(filename: str) -> str:
    """The file name to record: its last path part, at most MAX_NAME_LENGTH characters; NUL is refused."""
    if "\x00" in filename:
        raise BadFile(repr(filename[:80]), "the file name contains a NUL byte; rename the file")
    name = Path(filename.replace("\\", "/")).name or "image"
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, suffix = name.rpartition(".")
        keep = MAX_NAME_LENGTH - len(suffix) - 1 if dot and len(suffix) < 16 else MAX_NAME_LENGTH
        name = name[:keep] + (dot + suffix if dot and len(suffix) < 16 else "")
    return name


def check_image(*, data: bytes, filename: str, max_pixels: int | None = None) -> CheckedImage:
    """Decode the bytes fully (corrupt, truncated, bombs, formats outside the allow-list and non-images
    are refused, naming the file). The format is decided from the first bytes before any decoder runs;
    the pixel count (``max_pixels``, default :data:`DEFAULT_MAX_IMAGE_PIXELS`) from the header before
    any pixel is decoded."""
    name = clean_filename(filename)
    if not data:
        raise BadFile(name, "file is empty")
    try:
        image_format, width, height = decode_check(io.BytesIO(data), max_pixels=max_pixels or DEFAULT_MAX_IMAGE_PIXELS)
    except ImageError as exc:
        raise BadFile(name, str(exc)) from None
    extension = {"JPEG": ".jpg", "TIFF": ".tif"}.get(image_format, "." + image_format.lower())
    return CheckedImage(
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        extension=extension,
        content_type=PILImage.MIME.get(image_format, "application/octet-stream"),
    )


def store_image(session: Session, *, blobs: BlobStore, project: Project, image: CheckedImage) -> tuple[Image, bool]:
    """Record a checked image in the project; the same bytes again return the existing image (False)."""
    if not blobs.exists(image.blob_key):
        blobs.put_bytes(image.blob_key, image.data)
    created = insert_ignoring_duplicates(
        session,
        Image.__table__,
        {
            "project_id": project.id,
            "sha256": image.sha256,
            "blob_key": image.blob_key,
            "original_name": image.name,
            "content_type": image.content_type,
            "size_bytes": len(image.data),
            "width": image.width,
            "height": image.height,
            "created_at": utcnow(),
        },
        ["project_id", "sha256"],
    )
    row = session.scalar(select(Image).where(Image.project_id == project.id, Image.sha256 == image.sha256))
    assert row is not None
    return row, created


def add_images(
    session: Session, *, blobs: BlobStore, project: Project, files: list[tuple[str, bytes]], max_pixels: int | None = None
) -> AddedImages:
    """Add uploaded files all or nothing: any file that is not a usable image fails the whole request."""
    if not files:
        raise InvalidInput("no files were uploaded", loc=("body", "files"))
    checked: list[CheckedImage] = []
    problems: list[BadFile] = []
    for filename, data in files:
        try:
            checked.append(check_image(data=data, filename=filename, max_pixels=max_pixels))
        except BadFile as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise BadFile(f"{len(problems)} of the files", "; ".join(p.message for p in problems) + "; nothing was added")
    return _store_all(session, blobs=blobs, project=project, checked=checked)


def _store_all(
    session: Session, *, blobs: BlobStore, project: Project, checked: list[CheckedImage], names: list[str] | None = None
) -> AddedImages:
    """``names``: how the person knows each file (its path in an archive), for the duplicates' list."""
    result = AddedImages()
    tracker = DuplicateTracker()
    for index, image in enumerate(checked):
        row, created = store_image(session, blobs=blobs, project=project, image=image)
        result.images.append(row)
        result.created += created
        result.duplicates += not created
        tracker.note(names[index] if names else image.name, row, created)
    result.duplicate_files = tracker.found
    return result


def add_image_files(
    session: Session, *, blobs: BlobStore, project: Project, paths: list[tuple[str, Path]], max_pixels: int | None = None
) -> AddedImages:
    """Add files from an extracted archive: files that are not usable images are reported, the rest added."""
    checked, names, rejected = [], [], []
    for name, path in paths:
        try:
            checked.append(check_image(data=path.read_bytes(), filename=name, max_pixels=max_pixels))
            names.append(name)
        except BadFile as exc:
            rejected.append((name, exc.reason))
    result = _store_all(session, blobs=blobs, project=project, checked=checked, names=names)
    result.rejected = rejected
    return result


def get_image(session: Session, *, project: Project, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None or image.project_id != project.id:
        raise NotFound(f"image {image_id} not found in project {project.id}")
    return image


def image_bytes(*, blobs: BlobStore, image: Image) -> bytes:
    return blobs.get_bytes(image.blob_key)


def thumbnail_side(max_side: int) -> int:
    """The stored thumbnail size that serves ``max_side``: the next of :data:`THUMBNAIL_SIZES` up."""
    return next((size for size in THUMBNAIL_SIZES if size >= max_side), THUMBNAIL_SIZES[-1])


def thumbnail_bytes(*, blobs: BlobStore, image: Image, max_side: int) -> bytes:
    """A JPEG no larger than the thumbnail size serving ``max_side`` (:func:`thumbnail_side`) on either
    side (EXIF rotation applied), made once per size and kept."""
    max_side = thumbnail_side(max_side)
    key = f"thumbnails/{image.sha256[:2]}/{image.sha256}-{max_side}.jpg"
    if blobs.exists(key):
        return blobs.get_bytes(key)
    picture = open_image(blobs.get_bytes(image.blob_key), draft_size=max_side)
    picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    blobs.put_bytes(key, buffer.getvalue())
    return buffer.getvalue()


def list_images(
    session: Session,
    *,
    project: Project,
    view: View | None = None,
    concept_id: int | None = None,
    unannotated: bool | None = None,
    split: Split | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Image], int]:
    """A page of the project's images and the total matching; the filters need a view."""
    if view is None and (concept_id is not None or unannotated is not None or split is not None):
        raise InvalidInput("filters by concept, annotation or split need a view_id", loc=("query", "view_id"))
    query = select(Image).where(Image.project_id == project.id)
    if view is not None:
        annotated = exists().where(
            ViewImage.view_id == view.id, ViewImage.image_id == Image.id, ViewImage.annotated.is_(True)
        )
        if unannotated is True:
            query = query.where(~annotated)
        elif unannotated is False:
            query = query.where(annotated)
        # IN (not a correlated EXISTS): SQLite then walks the few matching ids of the view's index and
        # looks each image up, instead of probing once per image of the project (10x for the total).
        if concept_id is not None:
            query = query.where(
                Image.id.in_(select(Annotation.image_id).where(Annotation.view_id == view.id, Annotation.concept_id == concept_id))
            )
        if split is not None:
            query = query.where(
                Image.id.in_(select(ViewImage.image_id).where(ViewImage.view_id == view.id, ViewImage.split == split))
            )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(session.scalars(query.order_by(Image.id).offset(offset).limit(limit)))
    return items, total


def delete_image(session: Session, *, image: Image) -> list[str]:
    """Remove the image from its project; returns the blob keys nothing else uses any more (another
    project's image, a version's snapshot), for the caller to delete once the transaction is committed."""
    key = image.blob_key
    session.delete(image)
    session.flush()
    still_used = session.scalar(
        select(or_(exists().where(Image.blob_key == key), exists().where(VersionSample.blob_key == key)))
    )
    return [] if still_used else [key]


@dataclass
class Swept:
    blobs: int = 0
    thumbnails: int = 0
    partial_writes: int = 0


def sweep_orphan_blobs(session: Session, *, blobs: BlobStore) -> Swept:
    """Delete image bytes no row refers to (no project's image, no version's snapshot), the thumbnails of
    images whose bytes are gone, and half-written files: what a process killed mid-upload or mid-import
    leaves behind (its blobs were written, its transaction never committed).

    Only for start-up, while no other process of this data directory is uploading: bytes written by a
    transaction still open elsewhere would look orphaned too.
    """
    swept = Swept(partial_writes=blobs.remove_partial_writes())
    used = set(session.scalars(select(Image.blob_key))) | set(session.scalars(select(VersionSample.blob_key)))
    kept_hashes: set[str] = set()
    for key in list(blobs.keys("images")):
        if key in used:
            kept_hashes.add(key.rsplit("/", 1)[-1].split(".", 1)[0])
            continue
        blobs.delete(key)
        swept.blobs += 1
    for key in list(blobs.keys("thumbnails")):
        sha256 = key.rsplit("/", 1)[-1].rsplit("-", 1)[0]
        if sha256 not in kept_hashes:
            blobs.delete(key)
            swept.thumbnails += 1
    return swept


def remove_blobs(*, blobs: BlobStore, keys: list[str]) -> None:
    """Delete bytes nothing refers to any more; an image's thumbnails go with it."""
    for key in keys:
        blobs.delete(key)
        if key.startswith("images/"):
            sha256 = key.rsplit("/", 1)[-1].split(".", 1)[0]
            blobs.delete_prefix(f"thumbnails/{sha256[:2]}/{sha256}-")


__all__ = [
    "AddedImages",
    "CheckedImage",
    "DuplicateFile",
    "DuplicateTracker",
    "add_image_files",
    "add_images",
    "check_image",
    "delete_image",
    "remove_blobs",
    "sweep_orphan_blobs",
    "get_image",
    "image_bytes",
    "thumbnail_bytes",
    "thumbnail_side",
    "clean_filename",
    "list_images",
    "store_image",
]
