"""Portable "insert unless it exists" for PostgreSQL and SQLite, safe under concurrent requests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def insert_ignoring_duplicates(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT (keys) DO NOTHING; True when a row was written.

    Two requests adding the same image or concept at once both succeed, and one row results,
    without savepoints or rolling back the caller's session.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported backends
        raise RuntimeError(f"unsupported database {dialect!r}")
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=keys).returning(*table.primary_key.columns)
    # RETURNING, not rowcount: drivers disagree on the row count of a skipped conflict.
    return session.execute(statement).first() is not None
