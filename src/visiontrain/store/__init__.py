"""Persistence: SQLAlchemy 2 models, engine and sessions, Alembic migrations (run at start-up)."""

from visiontrain.store.base import Split, VersionStatus, ViewKind
from visiontrain.store.db import make_engine, make_session_factory, migrate, session_scope

__all__ = ["Split", "VersionStatus", "ViewKind", "make_engine", "make_session_factory", "migrate", "session_scope"]
