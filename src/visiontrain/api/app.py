"""The FastAPI application: REST API under /api/v1, OpenAPI at /docs and /openapi.json, /health open.

``create_app(config)`` opens the platform (database migrated, data directory created on first
start) and mounts the web UI when ``visiontrain.web`` is installed. Training never runs here: the
API queues versions and a worker process (``visiontrain worker``) trains them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from visiontrain import __version__
from visiontrain.api import uploads
from visiontrain.api.docs import install_docs
from visiontrain.api.errors import install_error_handlers
from visiontrain.api.hardening import AuthThrottle, HardeningMiddleware
from visiontrain.api.schemas.common import errors
from visiontrain.api.routers import (
    annotation_exports,
    assistant,
    annotations,
    health,
    images,
    imports,
    models,
    projects,
    settings,
    sweeps,
    tokens,
    versions,
    views,
)
from visiontrain.blobs import LocalBlobStore
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform
from visiontrain.services.predictions import PredictorCache

API_PREFIX = "/api/v1"
log = logging.getLogger("visiontrain.api")

DESCRIPTION = """
Projects hold images (stored once by content). A **view** is one task on them (classification, tagging or
detection) with its **concepts** and **annotations**. A **model** is a fixed set of a view's concepts; each
**version** is one training run of it, queued here and trained by a worker, with live metrics (server-sent
events), evaluation, predictions and exports.

Every endpoint but `/health` needs an API token: `Authorization: Bearer <token>`; create one with
`visiontrain token create` (after that, also with `POST /api/v1/tokens`). A token sees only its organisation's
projects and tokens.
"""


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    # Every route here needs a token (401, or 429 after too many failed attempts), validates its input
    # (422) and may find the database busy (503); routes add what else they answer.
    for module in (projects, images, views, annotations, imports, annotation_exports, models, versions, sweeps, settings,
                   assistant, tokens):
        router.include_router(module.router, responses=errors(401, 422, 429, 503))
    return router


def include_web(app: FastAPI) -> bool:
    """Serve the web UI when it is installed (``visiontrain.web.mount``); the API works without it."""
    try:
        from visiontrain.web import mount
    except ImportError:
        log.info("visiontrain.web is not available: serving the API only")
        return False
    mount(app)
    return True


def sweep_debris(platform: Platform, registry: uploads.ProcessRegistry) -> None:
    """What a killed server left: its upload directories, and bytes its uncommitted transactions wrote.

    Blobs are swept only when no other API process of this data directory is running (its open
    transactions' bytes would look orphaned too); working directories of dead processes always.
    """
    live = registry.live_others()
    dirs = uploads.sweep_upload_dirs(platform.config.tmp_dir, live=live)
    if live:
        log.info("start-up sweep: %d stale upload directories removed; blobs left alone (%d other API process(es) running)", dirs, len(live))
        return
    if not isinstance(platform.blobs, LocalBlobStore):
        # A shared object store is written by API processes on other machines, whose open transactions'
        # bytes would look orphaned from here: leaving an orphan costs bytes, deleting one loses an image.
        log.info("start-up sweep: %d stale upload directories removed; the shared object store is left alone", dirs)
        return
    from visiontrain.services.images import sweep_orphan_blobs

    with platform.sessions() as session:
        swept = sweep_orphan_blobs(session, blobs=platform.blobs)
    if dirs or swept.blobs or swept.thumbnails or swept.partial_writes:
        log.warning(
            "start-up sweep: removed %d upload directories, %d orphan image blobs, %d orphan thumbnails and "
            "%d half-written files left by a process that was killed",
            dirs, swept.blobs, swept.thumbnails, swept.partial_writes,
        )


def create_app(config: ServerConfig | None = None, *, platform: Platform | None = None, web: bool = True) -> FastAPI:
    """The application for ``config`` (default: from VISIONTRAIN_* environment variables)."""
    owns_platform = platform is None
    platform = platform or Platform.open(config or ServerConfig.from_env())

    registry = uploads.ProcessRegistry(platform.config.tmp_dir)
    sweep_debris(platform, registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        registry.close()
        if owns_platform:
            platform.close()

    max_body = (platform.config.max_upload_mb + 1) * 1024 * 1024
    app = FastAPI(
        title="visiontrain",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from a package's files below, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        # The body limit is HardeningMiddleware's (its 413 names the limit); one MB of slack for
        # multipart overhead, so that a file just over the limit gets the message naming the file.
    )
    app.state.platform = platform
    app.state.predictors = PredictorCache(platform.config.predictor_cache_size, device=platform.config.predict_device)
    app.state.auth_throttle = AuthThrottle(
        limit=platform.config.auth_failure_limit, window_seconds=platform.config.auth_failure_window_seconds
    )
    app.add_middleware(HardeningMiddleware, max_body_bytes=max_body, limit_mb=platform.config.max_upload_mb)
    install_error_handlers(app, limit_mb=platform.config.max_upload_mb)
    install_docs(app)
    app.include_router(health.router)
    app.include_router(api_router())
    if web:
        include_web(app)
    return app
