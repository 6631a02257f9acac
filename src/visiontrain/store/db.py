"""Engine and sessions for a database URL, and the schema migrations run at start-up."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_migrate_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean the psycopg 3 driver (the one installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@contextmanager
def temporary_database(server_url: str, *, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server at ``server_url``, dropped on leaving (tests and
    benchmarks: each gets a database of its own on one throw-away server); yields its URL."""
    url = make_url(normalize_url(server_url))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Up to 50 connections: more than the request thread pool (40) so a burst never waits on the pool.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (600), or make an existing one so. SQLite gives its
    -wal and -shm files the database file's mode."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
    except PermissionError:  # someone else's file: its owner decides
        pass


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the server read while a worker writes; foreign keys make ON DELETE CASCADE work.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Session.info key: the server's configured stale period, for code that holds only a session (a version's waiting_for).
STALE_AFTER_KEY = "stale_after_seconds"


def make_session_factory(engine: Engine, *, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """Sessions on ``engine``; ``info`` is copied into each session's ``info`` (the server's settings that code
    holding only a session needs, such as ``stale_after_seconds``)."""
    return sessionmaker(engine, expire_on_commit=False, info=dict(info or {}))


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success, rolled back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine, connection: Connection | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    config.attributes["connection"] = connection
    return config


# Any constant: the key of the PostgreSQL advisory lock that serialises migrations between processes.
_MIGRATION_LOCK_KEY = 0x76697369


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest revision (creates it on an empty database).

    A server and workers may start at the same moment: only one process migrates at a time (an
    advisory lock on PostgreSQL, a lock file beside an SQLite database), the others then find the
    schema current.
    """
    from alembic import command

    with _migrate_lock, _process_lock(engine) as connection:
        command.upgrade(alembic_config(engine, connection), "head")


@contextmanager
def _process_lock(engine: Engine) -> Iterator[Connection | None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield None
        return
    import fcntl

    lock_path = Path(f"{database}.migrate.lock")
    _private_file(lock_path)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
