from __future__ import annotations

from fastapi import APIRouter, status

from visiontrain.api.deps import OrgDep, ProjectDep, SessionDep, TokenDep
from visiontrain.api.schemas.common import errors
from visiontrain.api.schemas.projects import Identity, ProjectCreate, ProjectPublic, ProjectUpdate
from visiontrain.services import projects as service
from visiontrain.store.models import Project

router = APIRouter(tags=["projects"])


def present(session, project: Project) -> ProjectPublic:  # type: ignore[no-untyped-def]
    counts = service.project_counts(session, project=project)
    return ProjectPublic.model_validate(project).model_copy(
        update={"image_count": counts["images"], "view_count": counts["views"]}
    )


@router.get("/me", response_model=Identity, summary="The organisation and token making the request")
def whoami(token: TokenDep) -> Identity:
    return Identity(organization=token.organization.name, organization_id=token.organization_id, token_name=token.name)


@router.post("/projects", response_model=ProjectPublic, status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_project(body: ProjectCreate, session: SessionDep, organization_id: OrgDep) -> ProjectPublic:
    project = service.create_project(session, organization_id=organization_id, name=body.name, description=body.description)
    session.commit()
    return present(session, project)


@router.get("/projects", response_model=list[ProjectPublic], summary="The organisation's projects")
def list_projects(session: SessionDep, organization_id: OrgDep) -> list[ProjectPublic]:
    return [present(session, p) for p in service.list_projects(session, organization_id=organization_id)]


@router.get("/projects/{project_id}", response_model=ProjectPublic, responses=errors(404))
def get_project(project: ProjectDep, session: SessionDep) -> ProjectPublic:
    return present(session, project)


@router.patch("/projects/{project_id}", response_model=ProjectPublic, responses=errors(404, 409))
def update_project(body: ProjectUpdate, project: ProjectDep, session: SessionDep) -> ProjectPublic:
    service.update_project(session, project=project, name=body.name, description=body.description)
    session.commit()
    return present(session, project)


@router.delete("/projects/{project_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a project and all it holds",
               responses=errors(404, 409))
def delete_project(project: ProjectDep, session: SessionDep) -> None:
    service.delete_project(session, project=project)
    session.commit()
