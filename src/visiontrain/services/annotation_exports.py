"""A view's annotations as a dataset to download: COCO, YOLO or Pascal VOC (detection), CSV (any kind).

The view becomes the importers' neutral :class:`~visiontrain.data.importers.base.ImportedDataset`
(so that importing the download gives back what was exported) and one of
:mod:`visiontrain.data.exporters` writes it into a zip:

- images: every image annotated in the view, in image-id order, including those annotated with no
  object or "without concept"; images of the project not annotated in the view are left out and
  counted (``unannotated``);
- concepts: the view's, in its order (COCO category ids and YOLO class ids follow it);
- splits: each image's side as the view's split gives it (``GET /views/{id}/split`` reports the same):
  the side the user fixed, or, when the user fixed validation images, training for every other one,
  else the side the view's split gave it. A view without a split yet is split as the next version
  would split it; nothing is stored (exporting changes nothing).
- file names: the name each image was uploaded with, made safe and unique (see
  :mod:`visiontrain.data.exporters.base`); never a path.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visiontrain.blobs import BlobStore
from visiontrain.data.exporters import ExportError, ExportResult, formats_for_task, get_format, safe_file_name, write_dataset
from visiontrain.data.exporters.base import ZipSink
from visiontrain.data.importers.base import ImportedDataset, ImportedImage
from visiontrain.services import annotations as annotation_service
from visiontrain.services import splits
from visiontrain.services.errors import Conflict, InvalidInput
from visiontrain.store.base import Split, ViewKind
from visiontrain.store.models import Image, View

_CHUNK = 500  # image ids per query (SQLite's variable limit)


@dataclass
class ViewDataset:
    """A view as the exporters' neutral dataset, and what each of its images is in the store."""

    view_id: int
    dataset: ImportedDataset
    image_ids: dict[str, int]  # neutral image name -> image id
    unannotated: int  # images of the project not annotated in the view: not exported


@dataclass
class ViewExport:
    path: Path  # the zip file
    filename: str  # the name to download it as
    result: ExportResult
    unannotated: int
    files: dict[int, str]  # image id -> its path inside the zip


def export_formats(kind: str) -> list[dict[str, str]]:
    """The formats a view of ``kind`` can be exported as (for a form): name, title and layout."""
    return [{"name": f.name, "title": f.title, "layout": f.layout} for f in formats_for_task(kind)]


def check_format(*, view: View, format_name: str) -> str:
    """The format's name, or a 422 at ``query.format`` naming the formats this view can be exported as."""
    try:
        return get_format(format_name, view.kind).name
    except ExportError as exc:
        raise InvalidInput(str(exc), loc=("query", "format")) from None


def view_dataset(session: Session, *, blobs: BlobStore, view: View, scratch: Path) -> ViewDataset:
    """The view's annotated images, their annotations, concepts and sides (nothing is stored). Each image is a
    file: the store's own (a local store) or a download into ``scratch``, which the caller removes afterwards."""
    kind = ViewKind(view.kind)
    state = splits.split_state(session, view=view, persist=False)
    fixed_val = any(entry.fixed == Split.val for entry in state.entries)
    entries = sorted(state.entries, key=lambda e: e.image.id)
    annotations: dict[int, annotation_service.AnnotationState] = {}
    ids = [entry.image.id for entry in entries]
    for start in range(0, len(ids), _CHUNK):
        annotations.update(annotation_service.annotation_states(session, view=view, image_ids=ids[start : start + _CHUNK]))
    task = kind.value
    dataset = ImportedDataset(format="platform", task=task, concepts=[c.name for c in view.concepts], images=[])
    image_ids: dict[str, int] = {}
    for entry in entries:
        image = entry.image
        # Every image at once: a bounded read cache could evict the first before the last is written.
        path = blobs.local_file(image.blob_key, scratch)
        # The id keeps names apart (two uploads may share one); only the last part becomes the file's name.
        name = f"{image.id}/{safe_file_name(image.original_name, path)}"
        image_ids[name] = image.id
        dataset.images.append(ImportedImage(name=name, path=path, width=image.width, height=image.height))
        dataset.split[name] = (entry.fixed or Split.train.value) if fixed_val else entry.side  # type: ignore[assignment]
        state_of = annotations[image.id]
        if kind == ViewKind.detection:
            dataset.boxes[name] = list(state_of.boxes)
        elif kind == ViewKind.tagging:
            dataset.tags[name] = list(state_of.concepts)
        elif state_of.concepts:
            dataset.labels[name] = state_of.concepts[0]
    total = session.scalar(select(func.count()).select_from(Image).where(Image.project_id == view.project_id)) or 0
    return ViewDataset(view_id=view.id, dataset=dataset, image_ids=image_ids, unannotated=total - len(entries))


def download_name(view: View, format_name: str) -> str:
    """``<project>-<view>-<format>.zip``, with only characters safe in a file name."""
    text = f"{view.project.name}-{view.name}-{format_name}"
    return (re.sub(r"[^\w.-]+", "_", text).strip("._") or "export") + ".zip"


def write_export(described: ViewDataset, *, format_name: str, directory: Path, filename: str) -> ViewExport:
    """Write the described view as a zip in ``directory`` (the caller's, and the caller removes it)."""
    path = Path(directory) / "export.zip"
    if not described.dataset.images:
        raise Conflict(f"view {described.view_id} has no annotated image to export: annotate some first")
    try:
        with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
            result = write_dataset(described.dataset, ZipSink(archive), format_name)
    except ExportError as exc:
        raise InvalidInput(str(exc), loc=("query", "format")) from None
    files = {described.image_ids[name]: written for name, written in result.files.items()}
    return ViewExport(path=path, filename=filename, result=result, unannotated=described.unannotated, files=files)


def export_view(
    session: Session, *, blobs: BlobStore, view: View, format_name: str, directory: Path
) -> ViewExport:
    """The view's annotations in ``format_name`` as a zip in ``directory`` (for callers that keep the session)."""
    name = check_format(view=view, format_name=format_name)
    described = view_dataset(session, blobs=blobs, view=view, scratch=Path(directory) / "images")
    return write_export(described, format_name=name, directory=directory, filename=download_name(view, name))


__all__ = ["ViewDataset", "ViewExport", "check_format", "export_formats", "export_view", "view_dataset", "write_export"]
