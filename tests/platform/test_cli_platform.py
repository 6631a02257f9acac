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
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_serve_starts_api_and_worker_and_stops_both(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONTRAIN_") or k == "VISIONTRAIN_CACHE_DIR"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "visiontrain.cli.main", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            stdout=out, stderr=subprocess.STDOUT, env={**env, "COLUMNS": "200"},
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("serve did not come up:\n" + log.read_text())
        token = re.search(r"vt_[A-Za-z0-9_-]{20,}", log.read_text())
        assert token, log.read_text()
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        assert httpx.get(f"{base}/api/v1/projects", headers=headers).json() == []
        assert httpx.get(f"{base}/api/v1/projects").status_code == 401
        workers = _children(server.pid)
        assert len(workers) == 1, log.read_text()
        assert "worker" in Path(f"/proc/{workers[0]}/cmdline").read_text()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert not Path(f"/proc/{workers[0]}").exists() or "zombie" in Path(f"/proc/{workers[0]}/status").read_text().lower()
    assert (tmp_path / "data" / "visiontrain.db").is_file()


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
