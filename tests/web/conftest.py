"""The studio's browser tests run against a real platform: uvicorn on a free local port, a temporary
data directory (SQLite, local bytes), a real training worker, and a token made like `visiontrain` does."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # browser.py, beside this file


@dataclass
class Studio:
    url: str
    token: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.token}"}, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    import uvicorn

    import visiontrain.web as web
    from visiontrain.api.app import create_app
    from visiontrain.config import ServerConfig
    from visiontrain.jobs.worker import TrainingWorker
    from visiontrain.services import auth
    from visiontrain.services.platform import Platform

    if not web.studio_built():
        pytest.fail("the studio is not built: run scripts/build-web.sh")
    sources = Path(__file__).resolve().parents[2] / "web" / "src"
    newest = max((p.stat().st_mtime for p in sources.rglob("*") if p.is_file()), default=0)
    if newest > web.BUNDLE.stat().st_mtime:
        pytest.fail("the studio bundle is older than web/src: run scripts/build-web.sh")
    data = tmp_path_factory.mktemp("studio-data")
    config = ServerConfig(data_dir=data, heartbeat_seconds=0.5, stale_after_seconds=30, poll_seconds=0.2)
    platform = Platform.open(config)
    with platform.sessions() as session:
        _, token = auth.create_token(session, name="studio browser tests")
        session.commit()
    # The worker gets its own Platform, as the separate `visiontrain worker` process would.
    worker = TrainingWorker(Platform.open(config, run_migrations=False))
    worker_thread = threading.Thread(target=worker.run, name="training-worker", daemon=True)
    worker_thread.start()

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(platform=platform), host="127.0.0.1", port=port, log_level="warning"))
    server_thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    server_thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not server_thread.is_alive():
            pytest.fail("the studio's server did not start")
        time.sleep(0.05)
    try:
        yield Studio(url=f"http://127.0.0.1:{port}", token=token)
    finally:
        server.should_exit = True
        worker.stopping.set()
        server_thread.join(timeout=10)
        worker_thread.join(timeout=60)
        worker.platform.close()
        platform.close()
