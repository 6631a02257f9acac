"""Everything a process of the platform shares: configuration, database, byte storage."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from visiontrain.blobs import BlobStore, open_blob_store
from visiontrain.config import ServerConfig
from visiontrain.store.db import STALE_AFTER_KEY, make_engine, make_session_factory, migrate


@dataclass
class Platform:
    config: ServerConfig
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, config: ServerConfig, *, run_migrations: bool = True) -> "Platform":
        """Create the data directory and the schema on first start; migrate an older schema."""
        config.prepare()
        # The store first: a wrong bucket, endpoint or key stops the start before the database is touched.
        blobs = open_blob_store(
            config.blob_url,
            cache_dir=config.blob_cache_dir,
            cache_max_bytes=config.blob_cache_max_bytes,
            create_bucket=config.blob_create_bucket,
        )
        engine = make_engine(config.database_url)
        if run_migrations:
            migrate(engine)
        sessions = make_session_factory(engine, info={STALE_AFTER_KEY: config.stale_after_seconds})
        return cls(config=config, engine=engine, sessions=sessions, blobs=blobs)

    def close(self) -> None:
        if not self._closed:
            self.engine.dispose()
            self._closed = True
