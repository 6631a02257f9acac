"""Errors the services raise; each maps to one HTTP status and carries a message meant for the user."""

from __future__ import annotations

from collections.abc import Sequence


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class PayloadTooLarge(ServiceError):
    status_code = 413


class InvalidInput(ServiceError):
    """Input that is well-formed but cannot be used; ``loc`` is the field path, FastAPI-style."""

    status_code = 422

    def __init__(self, message: str, *, loc: Sequence[str | int] = ("body",)):
        super().__init__(message)
        self.loc = list(loc)


class BadFile(ServiceError):
    """An uploaded file that is not what it claims (not an image, corrupt, hostile archive)."""

    status_code = 400

    def __init__(self, filename: str, reason: str):
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason
