"""The demo project (``visiontrain demo``): the shared ants/bees photos as a ready classification view and model.

Idempotent: a second run finds the project, view, images (deduplicated by content) and model it
made before, and reuses a version that already trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from visiontrain.blobs import BlobStore
from visiontrain.services import auth, imports, models, projects, versions, views
from visiontrain.services.errors import InvalidInput
from visiontrain.settings import TrainingSettings
from visiontrain.store.base import VersionStatus
from visiontrain.store.models import Model, ModelVersion, View

PROJECT_NAME = "Ants and bees"
VIEW_NAME = "Species"
MODEL_NAME = "Ants vs bees"


@dataclass
class DemoSetup:
    project_id: int
    view_id: int
    model_id: int
    version_id: int
    images: int
    trained_before: bool


def find_ants_bees(shared: Path) -> Path:
    """``shared`` may be the shared folder, its datasets folder, or the ants_bees folder itself."""
    for candidate in (shared / "datasets" / "ants_bees", shared / "ants_bees", shared):
        if (candidate / "train").is_dir() and (candidate / "val").is_dir():
            return candidate
    raise InvalidInput(
        f"no ants_bees dataset (train/ and val/ folders) under {shared}: pass the shared folder, e.g. --shared ../shared",
        loc=("shared",),
    )


def set_up(
    session: Session, *, blobs: BlobStore, dataset: Path, organization: str = auth.DEFAULT_ORGANIZATION,
    settings: TrainingSettings | None = None,
) -> DemoSetup:
    org = auth.ensure_organization(session, name=organization)
    project = projects.find_project(session, organization_id=org.id, name=PROJECT_NAME) or projects.create_project(
        session, organization_id=org.id, name=PROJECT_NAME,
        description="Demo: the ants-versus-bees photos of the PyTorch transfer-learning tutorial.",
    )
    view = session.scalar(select(View).where(View.project_id == project.id, View.name == VIEW_NAME)) or views.create_view(
        session, project=project, name=VIEW_NAME, kind="classification"
    )
    report = imports.import_annotated(session, blobs=blobs, view=view, source=dataset, filename=dataset.name, format_name="imagefolder")
    model = session.scalar(select(Model).where(Model.view_id == view.id, Model.name == MODEL_NAME)) or models.create_model(
        session, view=view, name=MODEL_NAME
    )
    settings = settings or TrainingSettings()
    reusable = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.model_id == model.id, ModelVersion.status.in_([VersionStatus.succeeded, VersionStatus.queued, VersionStatus.running]))
        .order_by(ModelVersion.id.desc())
    ).first()
    trained_before = reusable is not None and reusable.status == VersionStatus.succeeded
    version = reusable or versions.create_version(session, model=model, settings=settings)
    return DemoSetup(
        project_id=project.id, view_id=view.id, model_id=model.id, version_id=version.id, images=report.images,
        trained_before=trained_before,
    )


def ensure_token(session: Session, *, token_file: Path, organization: str = auth.DEFAULT_ORGANIZATION) -> str:
    """The demo's token, kept (readable by the owner only) in the data directory so a rerun prints the same one."""
    if token_file.is_file():
        secret = token_file.read_text().strip()
        if auth.authenticate(session, secret=secret) is not None:
            return secret
    _, secret = auth.create_token(session, organization=organization, name="demo")
    token_file.write_text(secret + "\n")
    token_file.chmod(0o600)
    return secret
