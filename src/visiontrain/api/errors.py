"""Service errors as HTTP answers: a status and a message that names what is wrong (never a traceback)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from visiontrain.blobs import BlobNotFound, BlobStoreError
from visiontrain.services.errors import InvalidInput, ServiceError

log = logging.getLogger("visiontrain.api")


MULTIPART_HEADER_LIMIT = 4096  # python-multipart's limit on one part's header line (the file name is in it)


def _parser_reason(exc: BaseException) -> str:
    """The multipart parser's own reason, from the exceptions chained behind Starlette's message."""
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if type(seen).__name__ != "MultiPartException" and str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return ""


def merge_union_branches(errors: list[dict]) -> list[dict]:
    """A setting that takes a number or a word (learning_rate, devices) fails once per branch, each with the
    branch's name at the end of its path: one error at the setting's own path says both."""
    from visiontrain.settings import TrainingSettings

    merged: list[dict] = []
    by_path: dict[tuple, dict] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if len(loc) >= 2 and loc[-2] in TrainingSettings.model_fields and isinstance(loc[-1], str) \
                and loc[-1] not in TrainingSettings.model_fields:
            path = loc[:-1]
            if path in by_path:
                first = by_path[path]
                first["msg"] = f"{first['msg']} or {error['msg'].removeprefix('Input should be ')}"
                continue
            by_path[path] = {**error, "loc": list(path)}
            merged.append(by_path[path])
            continue
        merged.append(error)
    return merged


def install_error_handlers(app: FastAPI, *, limit_mb: int | None = None) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = merge_union_branches(list(exc.errors()))
        if errors == list(exc.errors()):
            return await request_validation_exception_handler(request, exc)
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413 and exc.detail == "Content Too Large" and limit_mb is not None:
            detail = (
                f"the request body is over the {limit_mb} MB upload limit (the server's VISIONTRAIN_MAX_UPLOAD_MB): "
                "send smaller files or fewer at once"
            )
            return JSONResponse({"detail": detail}, status_code=413, headers=exc.headers)
        if exc.status_code == 400 and exc.detail == "Invalid multipart data.":
            reason = _parser_reason(exc)
            if "header size" in reason.lower():
                detail = (
                    f"a part of the multipart body has a header over {MULTIPART_HEADER_LIMIT} bytes: most likely a "
                    "file name that long; rename the file (names are kept to 500 characters anyway)"
                )
            else:
                detail = f"the multipart body could not be parsed ({reason or 'malformed'}); send it as multipart/form-data"
            return JSONResponse({"detail": detail}, status_code=400)
        return await http_exception_handler(request, exc)

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

    @app.exception_handler(BlobStoreError)
    async def blob_store_unavailable(_request: Request, exc: BlobStoreError) -> JSONResponse:
        # The object store is down or refuses us: the deployer's to fix; the client may retry.
        log.error("object store: %s", exc)
        return JSONResponse({"detail": "the byte storage is unavailable; try again"}, status_code=503)
