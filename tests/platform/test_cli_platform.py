"""The platform's commands: tokens, `serve` (server + worker, first-start token) and `demo`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from visiontrain.cli.main import app

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_token_create_list_revoke(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    output = _invoke("token", "create", "--org", "acme", "--name", "ci", *data)
    secret = output.strip().splitlines()[-1]
    assert secret.startswith("vt_") and len(secret) > 40
    listing = _invoke("token", "list", *data)
    assert "acme" in listing and "ci" in listing and secret not in listing
    _invoke("token", "revoke", "1", *data)
    assert "acme" not in _invoke("token", "list", *data)
    missing = runner.invoke(app, ["token", "revoke", "99", *data])
    assert missing.exit_code == 2 and "no token with id 99" in missing.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return sorted(children)


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONTRAIN_") or k == "VISIONTRAIN_CACHE_DIR"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "visiontrain.cli.main", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            stdout=out, stderr=subprocess.STDOUT, env={**env, "COLUMNS": "200"},
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return server, base, log
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    pytest.fail("serve did not come up:\n" + log.read_text())


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" in status.read_text().lower()
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_serve_starts_api_and_worker_and_stops_both(tmp_path: Path) -> None:
    server, base, log = _start_serve(tmp_path)
    try:
        token = re.search(r"vt_[A-Za-z0-9_-]{20,}", log.read_text())
        assert token, log.read_text()
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        assert httpx.get(f"{base}/api/v1/projects", headers=headers).json() == []
        assert httpx.get(f"{base}/api/v1/projects").status_code == 401
        workers = _children(server.pid)
        assert len(workers) == 1, log.read_text()
        assert "worker" in Path(f"/proc/{workers[0]}/cmdline").read_text()
        # A worker that dies is replaced (the new one's start-up recovery handles what it was running).
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and [p for p in _children(server.pid) if not _gone(p)] in ([], workers):
            time.sleep(0.5)
        workers = [p for p in _children(server.pid) if not _gone(p)]
        assert len(workers) == 1, log.read_text()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert _gone(workers[0])
    assert (tmp_path / "data" / "visiontrain.db").is_file()
    # A second start finds the token made by the first and says how to get another; SIGTERM stops it all too.
    server, _, log = _start_serve(tmp_path)
    [worker] = _children(server.pid)
    server.terminate()
    assert server.wait(timeout=60) == 0
    assert _gone(worker)
    assert "visiontrain token create" in log.read_text() and not re.search(r"vt_[A-Za-z0-9_-]{20,}", log.read_text())


@pytest.mark.slow
def test_a_worker_stops_when_serve_is_killed(tmp_path: Path) -> None:
    server, _, log = _start_serve(tmp_path)
    [worker] = _children(server.pid)
    server.kill()
    server.wait()
    deadline = time.monotonic() + 30
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _gone(worker), "the worker outlived the killed server"


@pytest.mark.slow
def test_demo_trains_predicts_and_is_idempotent(tmp_path: Path, ants_bees_small: Path) -> None:
    args = ["--shared", str(ants_bees_small), "--data-dir", str(tmp_path / "data"), "--no-serve",
            "--set", "epochs=2", "--set", "image_size=96", "--set", "augmented_copies=0"]
    first = _invoke("demo", *args)
    assert "project 'Ants and bees': 36 images" in first
    assert re.search(r"epoch 2: train loss", first), first
    assert "version v1 succeeded" in first
    assert re.search(r"prediction for val/bees/\S+: (ants|bees) 0\.\d{3}, (ants|bees) 0\.\d{3}", first)
    second = _invoke("demo", *args)
    assert "version v1 succeeded" in second and "training in the worker" not in second
    token_file = tmp_path / "data" / "demo-token.txt"
    assert token_file.stat().st_mode & 0o777 == 0o600
