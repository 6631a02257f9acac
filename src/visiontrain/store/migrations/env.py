"""Alembic environment: runs against the engine handed over in ``config.attributes["engine"]``."""

from __future__ import annotations

from alembic import context

from visiontrain.store import models  # noqa: F401  (registers every table on the metadata)
from visiontrain.store.base import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from visiontrain.store.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
