"""Service errors as HTTP answers: a status and a message that names what is wrong (never a traceback)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from visiontrain.blobs import BlobNotFound
from visiontrain.services.errors import InvalidInput, ServiceError

log = logging.getLogger("visiontrain.api")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, InvalidInput):
            # The same shape as FastAPI's own validation errors, so clients handle one format.
            detail = [{"loc": exc.loc, "msg": exc.message, "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=exc.status_code)
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced on a unique name: the loser is told, nothing half-written stays.
        log.info("integrity error: %s", exc.orig)
        return JSONResponse({"detail": "conflicts with existing data (a name already taken?); nothing was changed"}, status_code=409)

    @app.exception_handler(OperationalError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return JSONResponse({"detail": "the database is busy or unreachable; try again"}, status_code=503)

    @app.exception_handler(BlobNotFound)
    async def blob_missing(_request: Request, exc: BlobNotFound) -> JSONResponse:
        log.error("stored bytes missing: %s", exc)
        return JSONResponse({"detail": f"stored file {exc.args[0]} is missing from storage"}, status_code=500)
