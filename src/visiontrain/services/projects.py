"""Projects: the top of the tree, each owned by one organisation."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from visiontrain.services.errors import Conflict, InvalidInput, NotFound
from visiontrain.store.models import Image, Model, Project, View


def _clean_name(name: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput(f"{what} name must not be empty", loc=("body", "name"))
    if "\x00" in name:
        raise InvalidInput(f"{what} name must not contain NUL characters", loc=("body", "name"))
    if len(name) > 200:
        raise InvalidInput(f"{what} name is longer than 200 characters (the limit)", loc=("body", "name"))
    return name


def create_project(session: Session, *, organization_id: int, name: str, description: str = "") -> Project:
    name = _clean_name(name, "project")
    if session.scalar(select(Project.id).where(Project.organization_id == organization_id, Project.name == name)):
        raise Conflict(f"a project named {name!r} already exists")
    project = Project(organization_id=organization_id, name=name, description=description)
    session.add(project)
    session.flush()
    return project


def list_projects(session: Session, *, organization_id: int) -> list[Project]:
    return list(session.scalars(select(Project).where(Project.organization_id == organization_id).order_by(Project.id)))


def get_project(session: Session, *, organization_id: int, project_id: int) -> Project:
    """The project if it belongs to the organisation; another organisation's project does not exist here."""
    project = session.get(Project, project_id)
    if project is None or project.organization_id != organization_id:
        raise NotFound(f"project {project_id} not found")
    return project


def find_project(session: Session, *, organization_id: int, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.organization_id == organization_id, Project.name == name))


def update_project(session: Session, *, project: Project, name: str | None = None, description: str | None = None) -> Project:
    if name is not None:
        name = _clean_name(name, "project")
        clash = session.scalar(
            select(Project.id).where(
                Project.organization_id == project.organization_id, Project.name == name, Project.id != project.id
            )
        )
        if clash:
            raise Conflict(f"a project named {name!r} already exists")
        project.name = name
    if description is not None:
        project.description = description
    session.flush()
    return project


def delete_project(session: Session, *, project: Project) -> None:
    """Models first (a concept a model uses cannot go before the model), then the project; the database cascades."""
    from visiontrain.services.models import refuse_if_training

    refuse_if_training(session, view_ids=select(View.id).where(View.project_id == project.id), what=f"project {project.name!r}")
    session.execute(delete(Model).where(Model.view_id.in_(select(View.id).where(View.project_id == project.id))))
    session.execute(delete(Project).where(Project.id == project.id))
    session.expunge(project)


def project_counts(session: Session, *, project: Project) -> dict[str, int]:
    images = session.scalar(select(func.count()).select_from(Image).where(Image.project_id == project.id)) or 0
    views = session.scalar(select(func.count()).select_from(View).where(View.project_id == project.id)) or 0
    return {"images": images, "views": views}
