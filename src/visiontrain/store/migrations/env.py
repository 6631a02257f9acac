"""Alembic environment: runs on the connection (or engine) that ``visiontrain.store.db.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from visiontrain.store import models  # noqa: F401  (registers every table on the metadata)
from visiontrain.store.base import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from visiontrain.store.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:  # the caller holds a lock on this connection
    run(given)
    given.commit()
else:
    with engine.connect() as connection:
        run(connection)
        connection.commit()
