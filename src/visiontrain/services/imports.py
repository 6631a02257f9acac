"""Archives into a project: plain image zips, and annotated datasets (ImageFolder, CSV, COCO, YOLO, VOC) into a view.

Archives are extracted by :mod:`visiontrain.data.archives` (path traversal, symlinks, zip bombs and
forged sizes are refused before a byte is written); annotated layouts are read by
:mod:`visiontrain.data.importers`. Files that are not usable images are reported, never silently dropped.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from visiontrain.blobs import BlobStore
from visiontrain.data.errors import DataError
from visiontrain.services import annotations as annotation_service
from visiontrain.services.errors import BadFile, InvalidInput
from visiontrain.services.images import AddedImages, DuplicateFile, DuplicateTracker, add_image_files, check_image, store_image
from visiontrain.services.views import create_concept
from visiontrain.store.base import Split, ViewKind
from visiontrain.store.models import Concept, Project, View


@dataclass
class ImportReport:
    format: str
    images: int = 0
    created: int = 0
    duplicates: int = 0
    annotated: int = 0
    concepts_created: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    duplicate_files: list[DuplicateFile] = field(default_factory=list)


def add_image_archive(
    session: Session, *, blobs: BlobStore, project: Project, archive: Path, filename: str, max_pixels: int | None = None
) -> AddedImages:
    """Every image in a zip or tar archive, unannotated; entries that are not images are listed in ``rejected``.
    It is extracted beside the upload (the server's own working directory, swept at start-up after a crash)."""
    from visiontrain.data.archives import extract_archive
    from visiontrain.data.images import IMAGE_EXTENSIONS

    workdir = Path(tempfile.mkdtemp(prefix="extracted-", dir=archive.parent))
    try:
        try:
            extraction = extract_archive(archive, workdir)
        except DataError as exc:
            raise BadFile(filename, str(exc)) from None
        paths, rejected = [], []
        for path in extraction.files:
            name = path.relative_to(workdir).as_posix()
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append((name, path))
            else:
                rejected.append((name, f"not an image file ({path.suffix or 'no extension'})"))
        if not paths:
            raise BadFile(filename, "the archive holds no image files" + (f" (only {len(rejected)} other files)" if rejected else ""))
        result = add_image_files(session, blobs=blobs, project=project, paths=paths, max_pixels=max_pixels)
        result.rejected = rejected + result.rejected
        if not result.images:
            raise BadFile(filename, "no file in the archive is a usable image: " + "; ".join(f"{n}: {r}" for n, r in result.rejected[:5]))
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def import_annotated(
    session: Session, *, blobs: BlobStore, view: View, source: Path, filename: str, format_name: str | None = None,
    max_pixels: int | None = None,
) -> ImportReport:
    """Images, concepts, annotations and fixed splits from an annotated dataset into ``view``.

    A ``test`` split (a ``test/`` folder, ``split`` column or ``test_labels.csv``) is stored as such:
    held out, never validation, so no version picks its checkpoint or stops early on it.

    Concepts missing from the view are created; an image already in the project (same bytes) keeps
    its identity and takes the archive's annotation in this view.
    """
    from visiontrain.data.importers import import_archive

    try:
        # Extracted beside the upload (the server's working directory, swept at start-up after a crash).
        extract_to = source.parent / "extracted" if source.is_file() else None
        dataset = import_archive(source, format=format_name, task=view.kind, display_name=filename, extract_to=extract_to)
    except DataError as exc:
        raise BadFile(filename, str(exc).removeprefix(f"{filename}: ")) from None
    try:
        report = ImportReport(format=dataset.format, rejected=list(dataset.rejected), warnings=list(dataset.warnings))
        report.summary = dataset.summary()
        existing = {c.name for c in view.concepts}
        for name in dataset.concepts:
            if name not in existing:
                create_concept(session, view=view, name=name)
                report.concepts_created.append(name)
        project = view.project
        kind = ViewKind(view.kind)
        known_concepts = {c.name: c for c in session.scalars(select(Concept).where(Concept.view_id == view.id))}
        # As the CLI reads it: without a validation part, training images are the split's to divide
        # (fixing them all to training would leave nothing to validate on); test images stay held out.
        has_val = any(side == "val" for side in dataset.split.values())
        fixed = {name: side for name, side in dataset.split.items() if has_val or side != "train"}
        duplicates = DuplicateTracker()
        label_of: dict[int, tuple[str, Any]] = {}  # image id -> (the archive file whose annotation it holds, that annotation)
        for item in dataset.images:
            try:
                checked = check_image(data=item.path.read_bytes(), filename=item.name, max_pixels=max_pixels)
            except BadFile as exc:
                report.rejected.append((item.name, exc.reason))
                continue
            image, created = store_image(session, blobs=blobs, project=project, image=checked)
            report.images += 1
            report.created += created
            report.duplicates += not created
            duplicates.note(item.name, image, created)
            annotation = _annotation_of(dataset, item.name, kind)
            if annotation is not None:
                earlier = label_of.get(image.id)
                if earlier is not None and earlier[1] != annotation:
                    report.warnings.append(
                        f"{item.name} has the same bytes as {earlier[0]} but another annotation; "
                        f"the image keeps the one of {item.name} (one image, one annotation per view)"
                    )
                label_of[image.id] = (item.name, annotation)
                annotation_service.set_annotation(
                    session, view=view, image=image, known_concepts=known_concepts, read_back=False, **annotation
                )
                report.annotated += 1
            if item.name in fixed:
                annotation_service.set_split(session, view=view, images=[image], split=Split(fixed[item.name]))
        report.duplicate_files = duplicates.found
        if report.images == 0:
            reasons = "; ".join(f"{n}: {r}" for n, r in report.rejected[:5])
            raise BadFile(filename, "no usable image in the archive" + (f": {reasons}" if reasons else ""))
        return report
    finally:
        if dataset.extraction_dir is not None:
            shutil.rmtree(dataset.extraction_dir, ignore_errors=True)


def _annotation_of(dataset: Any, name: str, kind: ViewKind) -> dict[str, Any] | None:
    if kind == ViewKind.classification:
        return {"concept": dataset.labels[name]} if name in dataset.labels else None
    if kind == ViewKind.tagging:
        return {"concepts": list(dataset.tags[name])} if name in dataset.tags else None
    if name not in dataset.boxes:
        return None
    return {
        "boxes": [
            annotation_service.Box(b.concept, b.x_min, b.y_min, b.x_max, b.y_max) for b in dataset.boxes[name]
        ]
    }


def known_formats(kind: str) -> list[dict[str, str]]:
    from visiontrain.data.importers import formats_for_task

    try:
        return [{"name": f.name, "title": f.title} for f in formats_for_task(kind)]
    except DataError as exc:
        raise InvalidInput(str(exc)) from None


__all__ = ["ImportReport", "add_image_archive", "import_annotated", "known_formats"]
