"""The server's habits (issue 7, items 7, 8 and the small bullets): debris swept at start-up, security
headers, failed-token throttling, private files, offline /docs, fixed thumbnail sizes, no descriptor leaks,
predictions on the CPU in the API process."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import UploadFile
from fastapi.testclient import TestClient

from visiontrain.api import uploads
from visiontrain.api.app import create_app
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform

from platform_support import create_project, make_token, upload


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_start_up_sweeps_what_a_killed_import_left_and_keeps_what_rows_reference(platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(platform=platform, web=False), headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
        project = create_project(client)
        [kept] = upload(client, project["id"], ant_and_bee_files["ants"][:1])
        thumbnail = client.get(f"/api/v1/projects/{project['id']}/images/{kept['id']}/content", params={"max_side": 128})
        assert thumbnail.status_code == 200
    blobs, root = platform.blobs, Path(platform.config.blob_url.removeprefix("file://"))
    # What kill -9 mid-import leaves: bytes of images whose rows never committed, their thumbnails,
    # a half-written blob, and the request's working directory (named after the dead process).
    orphan = "images/ee/" + "e" * 64 + ".jpg"
    blobs.put_bytes(orphan, b"orphan")
    blobs.put_bytes("thumbnails/ee/" + "e" * 64 + "-128.jpg", b"thumb")
    (root / "images" / "ee" / ".tmp-abc123").write_bytes(b"half")
    stale = platform.config.tmp_dir / f"{uploads.UPLOAD_DIR_PREFIX}{_dead_pid()}-xyz"
    (stale / "extracted").mkdir(parents=True)
    (stale / "upload.zip").write_bytes(b"\0" * 1024)

    create_app(platform=platform, web=False)  # a restart

    assert not blobs.exists(orphan) and not blobs.exists("thumbnails/ee/" + "e" * 64 + "-128.jpg")
    assert not (root / "images" / "ee" / ".tmp-abc123").exists()
    assert not stale.exists()
    assert blobs.exists(f"images/{kept['sha256'][:2]}/{kept['sha256']}.jpg")
    assert blobs.exists(f"thumbnails/{kept['sha256'][:2]}/{kept['sha256']}-128.jpg")


@pytest.mark.parametrize("blob_backend", ["s3"])
def test_a_shared_object_store_is_never_swept_at_start_up(platform: Platform) -> None:
    # API processes on other machines write to the same bucket; bytes of their open transactions look
    # orphaned from here, and deleting them would lose images. Their upload directories still go.
    orphan = "images/ee/" + "e" * 64 + ".jpg"
    platform.blobs.put_bytes(orphan, b"bytes of an upload another machine has not committed yet")
    stale = platform.config.tmp_dir / f"{uploads.UPLOAD_DIR_PREFIX}{_dead_pid()}-xyz"
    stale.mkdir(parents=True)

    create_app(platform=platform, web=False)

    assert platform.blobs.exists(orphan)
    assert not stale.exists()


def test_blobs_are_left_alone_while_another_api_process_runs(platform: Platform) -> None:
    # Another live process of the same data directory: its uncommitted upload's bytes must survive.
    script = (
        "import sys, time; from pathlib import Path; from visiontrain.api.uploads import ProcessRegistry; "
        "registry = ProcessRegistry(Path(sys.argv[1])); print('ready', flush=True); sys.stdin.read()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(platform.config.tmp_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "ready"
        in_flight = "images/dd/" + "d" * 64 + ".png"
        platform.blobs.put_bytes(in_flight, b"not committed yet")
        create_app(platform=platform, web=False)
        assert platform.blobs.exists(in_flight)
    finally:
        other.stdin.close()  # type: ignore[union-attr]
        other.wait()
    create_app(platform=platform, web=False)  # that process is gone now
    assert not platform.blobs.exists(in_flight)


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    responses = [
        client.get("/health"),
        client.get("/api/v1/projects"),
        client.get("/api/v1/projects/999"),  # 404
        client.get("/api/v1/projects", headers={"Authorization": "Bearer nope"}),  # 401
        client.post("/api/v1/projects", content="{", headers={"Content-Type": "application/json"}),  # 422
        client.get("/openapi.json"),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_the_studio_is_served_under_a_policy_that_allows_what_it_uses(platform: Platform) -> None:
    with TestClient(create_app(platform=platform, web=True)) as client:
        page = client.get("/")
        assert page.headers["content-security-policy"]
        # The shell has no inline script (the policy allows none) and loads only same-origin files.
        assert "<script>" not in page.text and "https://" not in page.text
        csp = page.headers["content-security-policy"]
        assert "img-src 'self' blob: data:" in csp  # upload previews are object URLs; the favicon a data: URL
        assert client.get("/static/studio.css").headers["x-content-type-options"] == "nosniff"


def test_docs_are_served_from_package_files_with_no_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    # Its one inline script is allowed by hash, not by 'unsafe-inline'.
    assert "'sha256-" in page.headers["content-security-policy"]
    assert "unsafe-inline' " not in page.headers["content-security-policy"].split("script-src", 1)[1].split(";")[0]
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200


def test_failed_token_attempts_are_throttled_per_address_with_retry_after(platform: Platform) -> None:
    tight = Platform(
        config=ServerConfig(**{**platform.config.model_dump(), "auth_failure_limit": 5, "auth_failure_window_seconds": 60}),
        engine=platform.engine, sessions=platform.sessions, blobs=platform.blobs,
    )
    good = make_token(platform)
    with TestClient(create_app(platform=tight, web=False)) as client:
        answers = [client.get("/api/v1/me", headers={"Authorization": f"Bearer vt_guess{i}"}).status_code for i in range(8)]
        assert answers[:4] == [401] * 4 and answers[4:] == [429] * 4
        throttled = client.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})
        # Even the right token is refused from this address until the window has passed: guessing gains nothing.
        assert throttled.status_code == 429 and 1 <= int(throttled.headers["retry-after"]) <= 60
        assert "too many failed token attempts" in throttled.json()["detail"]
    with TestClient(create_app(platform=tight, web=False), client=("10.0.0.2", 5000)) as elsewhere:
        assert elsewhere.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_the_throttle_forgets_failures_after_the_window() -> None:
    from visiontrain.api.hardening import AuthThrottle

    now = [1000.0]
    throttle = AuthThrottle(limit=3, window_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("1.2.3.4")
    assert throttle.retry_after("1.2.3.4") == 60 and throttle.retry_after("5.6.7.8") is None
    now[0] += 30
    assert throttle.retry_after("1.2.3.4") == 30
    now[0] += 31
    assert throttle.retry_after("1.2.3.4") is None


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_the_data_directory_is_private_and_the_database_readable_by_its_owner_only(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data")
    platform = Platform.open(config)
    try:
        assert stat.S_IMODE(config.data_dir.stat().st_mode) == 0o700
        database = config.data_dir / "visiontrain.db"
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        for extra in config.data_dir.glob("visiontrain.db*"):
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra
    finally:
        platform.close()
    # An existing world-readable directory (an older install) is made private at the next start.
    config.data_dir.chmod(0o755)
    Platform.open(config).close()
    assert stat.S_IMODE(config.data_dir.stat().st_mode) == 0o700


def test_thumbnails_are_stored_in_a_few_fixed_sizes(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    [image] = upload(client, project["id"], ant_and_bee_files["ants"][:1])
    url = f"/api/v1/projects/{project['id']}/images/{image['id']}/content"
    for side in range(16, 1025, 37):
        assert client.get(url, params={"max_side": side}).status_code == 200
    stored = list(platform.blobs.keys("thumbnails"))
    assert sorted(int(k.rsplit("-", 1)[1].split(".")[0]) for k in stored) == [128, 256, 512, 1024]


def test_saving_an_archive_upload_leaves_no_descriptor_open(tmp_path: Path) -> None:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc")
    before = len(list(fd_dir.iterdir()))
    for _ in range(20):
        uploads.save_upload(UploadFile(io.BytesIO(b"PK\x03\x04 data"), filename="a.zip"), tmp_path, limit_mb=1)
    assert len(list(fd_dir.iterdir())) == before


def test_predictions_in_the_api_process_use_the_cpu_unless_configured(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(platform=platform, web=False)
    assert app.state.predictors.device == "cpu"
    monkeypatch.setenv("VISIONTRAIN_PREDICT_DEVICE", "cuda:1")
    assert ServerConfig.from_env(data_dir=platform.config.data_dir).predict_device == "cuda:1"

    # A real checkpoint; without an ONNX file or database sessions to export one, PyTorch serves it.
    from model_checkpoints import write_random_head_checkpoint

    (platform.config.data_dir / "run").mkdir()
    run = write_random_head_checkpoint(platform.config.data_dir / "run", ["ants", "bees"])
    platform.blobs.put_file("artifacts/x/best.pt", run / "best.pt")
    served = app.state.predictors.get(blobs=platform.blobs, checkpoint_key="artifacts/x/best.pt")
    assert served.predictor.backend.device.type == "cpu"
