"""The REST API (FastAPI) under /api/v1: thin routers over :mod:`visiontrain.services`."""

from visiontrain.api.app import create_app

__all__ = ["create_app"]
