"""Platform fixtures: a database per test (SQLite, and PostgreSQL when VISIONTRAIN_TEST_POSTGRES_URL is set),
the app with an authorised client, and real image bytes from the shared ants/bees photos."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from visiontrain.api.app import create_app
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform
from visiontrain.store.db import temporary_database

from platform_support import make_token

POSTGRES_ENV = "VISIONTRAIN_TEST_POSTGRES_URL"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend (a new PostgreSQL database per test, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"PostgreSQL cases need {POSTGRES_ENV} (scripts/ci-postgres.sh starts a server and prints it)")
    with temporary_database(server, prefix="vt_test") as url:
        yield url


BLOB_BACKENDS = ["local", "s3"]


@pytest.fixture
def blob_backend() -> str:
    """Where the platform keeps bytes: "local" (a directory, the default) or "s3" (the real S3 server).
    A test runs on both with ``@pytest.mark.parametrize("blob_backend", BLOB_BACKENDS)``."""
    return "local"


@pytest.fixture
def blob_url(blob_backend: str, request: pytest.FixtureRequest) -> str:
    """The platform's VISIONTRAIN_BLOB_URL: empty (file://<data dir>/blobs) or a fresh prefix on the S3 server."""
    return request.getfixturevalue("s3_blob_url") if blob_backend == "s3" else ""


@pytest.fixture
def server_config(database_url: str, blob_url: str, tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        data_dir=tmp_path / "data",
        database_url=database_url,
        blob_url=blob_url,
        heartbeat_seconds=0.5,
        stale_after_seconds=5,
        poll_seconds=0.2,
    )


@pytest.fixture
def platform(server_config: ServerConfig) -> Iterator[Platform]:
    opened = Platform.open(server_config)
    yield opened
    opened.close()


@pytest.fixture
def app(platform: Platform):  # type: ignore[no-untyped-def]
    return create_app(platform=platform, web=False)


@pytest.fixture
def client(app, platform: Platform) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, headers={"Authorization": f"Bearer {make_token(platform)}"}) as test_client:
        yield test_client


@pytest.fixture
def other_org_client(app, platform: Platform) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, headers={"Authorization": f"Bearer {make_token(platform, 'globex')}"}) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def ant_and_bee_files(datasets_dir: Path) -> dict[str, list[Path]]:
    """Eight real photos per class (sorted names: deterministic)."""
    root = datasets_dir / "ants_bees" / "train"
    return {label: sorted((root / label).glob("*.jpg"))[:8] for label in ("ants", "bees")}
