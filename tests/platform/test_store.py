"""The store: migrations on both backends, byte storage, server configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from visiontrain.blobs import BlobNotFound, LocalBlobStore, open_blob_store
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform
from visiontrain.store.db import make_engine, migrate

TABLES = {
    "organizations", "api_tokens", "projects", "images", "views", "concepts", "view_images", "annotations",
    "models", "model_concepts", "model_versions", "version_samples", "version_metrics", "artifacts", "workers",
}


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)  # a second start changes nothing
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """A server and its workers start at the same moment on an empty database: none of them fails."""
    import subprocess
    import sys

    script = "import sys; from visiontrain.store.db import make_engine, migrate; migrate(make_engine(sys.argv[1]))"
    processes = [subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE) for _ in range(3)]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
    engine = make_engine(database_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_first_start_creates_the_data_directory(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "new" / "dir")
    platform = Platform.open(config)
    try:
        assert (tmp_path / "new" / "dir" / "visiontrain.db").is_file()
        assert config.blob_url == (tmp_path / "new" / "dir" / "blobs").resolve().as_uri()
        assert config.runs_dir.is_dir()
    finally:
        platform.close()


def test_config_reads_environment_and_arguments_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VISIONTRAIN_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("VISIONTRAIN_MAX_UPLOAD_MB", "7")
    assert ServerConfig.from_env().data_dir == (tmp_path / "from-env").resolve()
    assert ServerConfig.from_env().max_upload_mb == 7
    assert ServerConfig.from_env(data_dir=tmp_path / "arg").data_dir == (tmp_path / "arg").resolve()
    monkeypatch.setenv("VISIONTRAIN_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ValueError, match="max_upload_mb"):
        ServerConfig.from_env()


def test_local_blob_store_round_trip_and_refuses_escaping_keys(tmp_path: Path) -> None:
    store = open_blob_store((tmp_path / "blobs").as_uri())
    assert isinstance(store, LocalBlobStore)
    store.put_bytes("images/ab/abc.jpg", b"bytes")
    assert store.get_bytes("images/ab/abc.jpg") == b"bytes"
    assert store.size("images/ab/abc.jpg") == 5
    assert store.local_path("images/ab/abc.jpg").read_bytes() == b"bytes"
    assert not list((tmp_path / "blobs" / "images" / "ab").glob(".tmp-*"))  # written atomically
    for key in ("../outside", "/etc/passwd", "a/../../b", "a\\b", ""):
        with pytest.raises(ValueError, match="invalid blob key"):
            store.put_bytes(key, b"x")
    store.put_bytes("thumbs/abc-64.jpg", b"t")
    store.put_bytes("thumbs/abc-128.jpg", b"t")
    store.put_bytes("thumbs/abd-64.jpg", b"t")
    assert store.delete_prefix("thumbs/abc-") == 2 and store.exists("thumbs/abd-64.jpg")
    store.delete("images/ab/abc.jpg")
    with pytest.raises(BlobNotFound):
        store.get_bytes("images/ab/abc.jpg")


def test_unknown_blob_scheme_names_the_supported_one() -> None:
    with pytest.raises(ValueError, match="file:///"):
        open_blob_store("s4://bucket/prefix")
