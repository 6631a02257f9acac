"""Migration 0005 (the indexes for many images) up and down on both backends, the plans that use them, and
the split's stored sides written in bulk giving the same sides as before."""

from __future__ import annotations

from sqlalchemy import inspect, insert, select, text

from visiontrain.store.db import alembic_config, make_engine, migrate
from visiontrain.store.models import SCALE_INDEXES

NAMES = {index.name for index in SCALE_INDEXES}


def _indexes(engine) -> set[str]:  # type: ignore[no-untyped-def]
    found = set()
    for table in ("images", "annotations", "version_samples", "view_images"):
        found |= {index["name"] for index in inspect(engine).get_indexes(table)}
    return found


def test_migration_0005_creates_and_drops_the_scale_indexes(database_url: str) -> None:
    from alembic import command

    engine = make_engine(database_url)
    try:
        migrate(engine)
        assert NAMES <= _indexes(engine)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0005"
            command.downgrade(alembic_config(engine, connection), "0004")
            connection.commit()
        assert not NAMES & _indexes(engine)
        assert {"ix_images_project_id", "ix_annotations_view_image"} <= _indexes(engine)  # older ones kept
        migrate(engine)  # and up again
        assert NAMES <= _indexes(engine)
    finally:
        engine.dispose()


def test_the_models_declare_what_the_migration_creates(database_url: str) -> None:
    """Alembic's comparison of the models with the migrated schema finds no index of 0005 missing or extra."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from visiontrain.store.base import Base

    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        index_changes = [d for d in differences if isinstance(d, tuple) and d[0] in ("add_index", "remove_index")]
        assert not [d for d in index_changes if d[1].name in NAMES], index_changes
    finally:
        engine.dispose()


def test_images_of_a_concept_come_from_the_view_concept_index(database_url: str) -> None:
    """The listing's filter by concept (and the count per concept) reads ix_annotations_view_concept_image
    (with statistics, on PostgreSQL); before 0005 it combined or filtered two other indexes."""
    from alembic import command

    from visiontrain.services.images import list_images
    from visiontrain.services.views import list_concepts
    from visiontrain.store.base import utcnow
    from visiontrain.store.db import make_session_factory
    from visiontrain.store.models import Annotation, Concept, Image, Organization, Project, View

    engine = make_engine(database_url)
    try:
        migrate(engine)
        now = utcnow()
        with engine.begin() as connection:
            org = connection.execute(insert(Organization).values(name="o").returning(Organization.id)).scalar_one()
            project = connection.execute(insert(Project).values(organization_id=org, name="p", description="", created_at=now)
                                         .returning(Project.id)).scalar_one()
            views = [connection.execute(insert(View).values(project_id=project, name=f"v{v}", kind="tagging", created_at=now)
                                        .returning(View.id)).scalar_one() for v in range(2)]
            concepts = [connection.execute(insert(Concept).values(view_id=views[c % 2], name=f"c{c}", created_at=now)
                                           .returning(Concept.id)).scalar_one() for c in range(20)]
            connection.execute(insert(Image), [
                {"project_id": project, "sha256": f"{i:064x}", "blob_key": f"k{i}", "original_name": "x.jpg",
                 "content_type": "image/jpeg", "size_bytes": 1, "width": 1, "height": 1, "created_at": now}
                for i in range(10_000)
            ])
            ids = list(connection.scalars(select(Image.id).order_by(Image.id)))
            # Each image: concept i % 10 of both views (the view's concepts are the even or the odd ones).
            connection.execute(insert(Annotation), [
                {"view_id": views[v], "image_id": image_id, "concept_id": concepts[(i % 10) * 2 + v], "created_at": now}
                for i, image_id in enumerate(ids) for v in range(2)
            ])
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("ANALYZE")
        query = (select(Annotation.image_id).where(Annotation.view_id == views[1], Annotation.concept_id == concepts[7])
                 .order_by(Annotation.image_id).limit(50))

        def plan() -> str:
            with engine.connect() as connection:
                compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
                prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
                return " ".join(str(row) for row in connection.exec_driver_sql(prefix + str(compiled)))

        assert "ix_annotations_view_concept_image" in plan(), plan()
        with make_session_factory(engine)() as session:
            view = session.get(View, views[1])
            project_row = session.get(Project, project)
            items, total = list_images(session, project=project_row, view=view, concept_id=concepts[7], limit=5)
            assert total == 1000 and [i.id for i in items] == ids[3:50:10]
            counts = {c.name: n for c, n in list_concepts(session, view=view)}
            assert counts == {f"c{c}": 1000 for c in range(1, 20, 2)}
        with engine.connect() as connection:
            command.downgrade(alembic_config(engine, connection), "0004")
            connection.commit()
        engine.dispose()  # new connections: SQLite's cached statements keep their old plans
        assert "ix_annotations_view_concept_image" not in plan()
    finally:
        engine.dispose()
