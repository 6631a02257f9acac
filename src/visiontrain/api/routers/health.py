from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from visiontrain import __version__
from visiontrain.api.deps import PlatformDep
from visiontrain.api.schemas.common import errors

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and database check (no token needed)", responses=errors(503))
def health(platform: PlatformDep) -> dict[str, str]:
    with platform.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__, "database": platform.engine.dialect.name}
