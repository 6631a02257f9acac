"""Dependencies every router shares: the platform, a database session, the caller's token, the resources in the path.

Auth: ``Authorization: Bearer <token>`` (tokens come from ``visiontrain token create``); a browser
may send the same token in the ``visiontrain_token`` cookie instead, for reading only (GET: <img>,
EventSource): a request that changes data must carry the header, so another site cannot forge one
with the user's cookie.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from visiontrain.api.hardening import AuthThrottle
from visiontrain.api.schemas.common import MAX_ID
from visiontrain.blobs import BlobStore
from visiontrain.services import auth, models, projects, versions, views
from visiontrain.services.platform import Platform
from visiontrain.services.predictions import PredictorCache
from visiontrain.store.models import ApiToken, Model, ModelVersion, Project, View

TOKEN_COOKIE = "visiontrain_token"
_bearer = HTTPBearer(auto_error=False, description="An API token from `visiontrain token create`.")
_cookie = APIKeyCookie(name=TOKEN_COOKIE, auto_error=False, description="The same token, set by the web UI.")


# Dependencies that only read what is in memory are async: FastAPI runs a sync one on a thread of its pool,
# a hop each request would pay for nothing.
async def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def get_predictors(request: Request) -> PredictorCache:
    return request.app.state.predictors


PlatformDep = Annotated[Platform, Depends(get_platform)]
PredictorsDep = Annotated[PredictorCache, Depends(get_predictors)]


def get_session(platform: PlatformDep) -> Iterator[Session]:
    """A session per request; routes that change data commit it themselves."""
    with platform.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_blobs(platform: PlatformDep) -> BlobStore:
    return platform.blobs


BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttled(retry_after: int) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many failed token attempts from this address; try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
CookieDep = Annotated[str | None, Depends(_cookie)]


def get_token(request: Request, session: SessionDep, bearer: BearerDep, cookie: CookieDep) -> ApiToken:
    return check_token(request, session, bearer, cookie)


def check_token(
    request: Request, session: Session, bearer: HTTPAuthorizationCredentials | None, cookie: str | None
) -> ApiToken:
    """The caller's live token: 401 when it is missing or not valid, 429 after too many failures from the address."""
    return verify_secret(request, session, presented_secret(request, bearer, cookie))


def presented_secret(request: Request, bearer: HTTPAuthorizationCredentials | None, cookie: str | None) -> str:
    """The secret the caller sent, before the database is asked about it: 429 while the address is throttled,
    401 when there is none or when a cookie alone comes with a request that changes data."""
    throttle: AuthThrottle = request.app.state.auth_throttle
    if (retry_after := throttle.retry_after(client_address(request))) is not None:
        raise _throttled(retry_after)
    secret = bearer.credentials if bearer is not None else cookie
    if bearer is None and cookie and request.method not in SAFE_METHODS:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the token cookie only authorises reading; send 'Authorization: Bearer <token>' to change data",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send 'Authorization: Bearer <token>' (create one with `visiontrain token create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return secret


def verify_secret(request: Request, session: Session, secret: str) -> ApiToken:
    """The live token with this secret (its last use recorded and committed); a failure counts against the address."""
    token = auth.authenticate(session, secret=secret)
    if token is None:
        throttle: AuthThrottle = request.app.state.auth_throttle
        address = client_address(request)
        throttle.failed(address)
        if (retry_after := throttle.retry_after(address)) is not None:
            raise _throttled(retry_after)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
        )
    # Commit now: the "last used" write must not hold the database for the rest of the request.
    session.commit()
    return token


TokenDep = Annotated[ApiToken, Depends(get_token)]


async def get_presented_secret(request: Request, bearer: BearerDep, cookie: CookieDep) -> str:
    """For a route that verifies the token itself, in the one thread-pool hop it makes (the predict route): what
    needs no database is refused here, before the request's own parameters are validated, as on every route."""
    return presented_secret(request, bearer, cookie)


SecretDep = Annotated[str, Depends(get_presented_secret)]


async def get_organization_id(token: TokenDep) -> int:
    return token.organization_id


OrgDep = Annotated[int, Depends(get_organization_id)]


def get_project(project_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, organization_id: OrgDep) -> Project:
    return projects.get_project(session, organization_id=organization_id, project_id=project_id)


def get_view(view_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, organization_id: OrgDep) -> View:
    return views.get_view(session, organization_id=organization_id, view_id=view_id)


def get_model(model_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, organization_id: OrgDep) -> Model:
    return models.get_model(session, organization_id=organization_id, model_id=model_id)


def get_version(version_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, organization_id: OrgDep) -> ModelVersion:
    return versions.get_version(session, organization_id=organization_id, version_id=version_id)


ProjectDep = Annotated[Project, Depends(get_project)]
ViewDep = Annotated[View, Depends(get_view)]
ModelDep = Annotated[Model, Depends(get_model)]
VersionDep = Annotated[ModelVersion, Depends(get_version)]
