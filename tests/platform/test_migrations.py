"""Downgrading a migration keeps the data of the tables it changes. SQLite alters a column by rebuilding the
table (copy, DROP, rename), and with foreign keys on, dropping model_versions would cascade to every
version's snapshot, artifacts and metrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from visiontrain.services.platform import Platform
from visiontrain.store.db import alembic_config, migrate
from visiontrain.store.models import Annotation, ModelVersion, VersionSample, View

from platform_support import annotated_classification_view


def _counts(platform: Platform) -> tuple[int, ...]:
    with platform.sessions() as session:
        return tuple(session.scalar(select(func.count(table.id))) for table in (View, Annotation, ModelVersion, VersionSample))


@pytest.mark.parametrize("target", ["0003", "0001"])
def test_downgrading_and_back_keeps_views_annotations_versions_and_snapshots(client: TestClient, platform: Platform, ant_and_bee_files, target: str) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {"epochs": 1}})
    assert response.status_code == 201, response.text
    before = _counts(platform)
    assert before[0] == 1 and before[1] > 0 and before[2] == 1 and before[3] > 0

    with platform.engine.connect() as connection:
        command.downgrade(alembic_config(platform.engine, connection), target)
        connection.commit()
    assert _counts(platform) == before
    migrate(platform.engine)
    assert _counts(platform) == before
