"""A cluster on one machine: every process is its own "machine" with a data directory of its own, and they
share only the PostgreSQL URL and the S3 object store (a real SeaweedFS).

An API server takes the uploads and queues versions; two workers, each with its own scratch directory,
train them; a second API process that has never seen any of it serves predictions from the checkpoints
in the store, after the workers' directories are deleted. A worker killed with SIGKILL while another
keeps working leaves nothing stuck: its version is failed with the reason once its heartbeat is stale,
and the queue goes on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from platform_support import annotated_classification_view, jpeg, make_token
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform
from visiontrain.store.db import normalize_url, temporary_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

POSTGRES_ENV = "VISIONTRAIN_TEST_POSTGRES_URL"
TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8, "early_stopping": False, "fine_tune": False}
ENDLESS = {**TINY, "epochs": 1000, "batch_size": 1}  # long enough to be killed mid-run
STALE_SECONDS = 5
# Liveness fast enough for a test; the same on every "machine" (they are configured alike in a real cluster).
TIMING = {"VISIONTRAIN_HEARTBEAT_SECONDS": "0.5", "VISIONTRAIN_STALE_AFTER_SECONDS": str(STALE_SECONDS),
          "VISIONTRAIN_POLL_SECONDS": "0.2"}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the cluster, dropped afterwards."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"the cluster needs {POSTGRES_ENV} (scripts/ci-postgres.sh starts a server and prints it)")
    with temporary_database(server, prefix="vt_cluster") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Machine:
    """One process of the cluster with a data directory of its own (nothing else on disk is shared)."""

    def __init__(self, name: str, root: Path, database_url: str, blob_url: str, args: list[str]):
        self.name, self.data_dir = name, root / name
        self.log_path = root / f"{name}.log"
        # Only what a real machine of the cluster is given: the database URL and the store (its AWS_* keys are
        # in the environment); no feature cache or blob cache shared through a path.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONTRAIN_")}
        env |= TIMING | {"VISIONTRAIN_DATA_DIR": str(self.data_dir), "VISIONTRAIN_DATABASE_URL": database_url,
                         "VISIONTRAIN_BLOB_URL": blob_url}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "visiontrain.cli.main", *args], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Cluster:
    def __init__(self, root: Path, database_url: str, blob_url: str):
        self.root, self.database_url, self.blob_url = root, database_url, blob_url
        self.machines: list[Machine] = []
        # The token is made like an operator would, once, against the shared database (this also migrates it).
        self.admin = Platform.open(ServerConfig(data_dir=root / "admin", database_url=database_url, blob_url=blob_url))
        self.token = make_token(self.admin)
        self.store = self.admin.blobs

    def api(self, name: str) -> httpx.Client:
        port = _free_port()
        self._start(name, ["serve", "--workers", "0", "--host", "127.0.0.1", "--port", str(port)])
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {self.token}"},
                              timeout=httpx.Timeout(60.0))

        def healthy() -> bool:
            try:
                return client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        self.wait_for(healthy, 120, f"API server {name}")
        return client

    def worker(self, name: str, *args: str) -> Machine:
        return self._start(name, ["worker", "--name", name, *args])

    def _start(self, name: str, args: list[str]) -> Machine:
        machine = Machine(name, self.root, self.database_url, self.blob_url, args)
        self.machines.append(machine)
        return machine

    def logs(self) -> str:
        return "\n".join(f"--- {m.name} (exit {m.process.poll()}):\n{m.log()}" for m in self.machines)

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            for machine in self.machines:
                code = machine.process.poll()
                if code not in (None, 0, -signal.SIGKILL):
                    raise AssertionError(f"{machine.name} exited with {code} while waiting for {what}\n{self.logs()}")
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def worker_names(self) -> dict[str, str]:
        """Registered workers: id -> the name each was started with."""
        from visiontrain.store.models import Worker

        engine = create_engine(normalize_url(self.database_url))
        try:
            with engine.connect() as connection:
                return dict(connection.execute(select(Worker.id, Worker.name)).all())
        finally:
            engine.dispose()

    def stop(self) -> None:
        for machine in reversed(self.machines):
            machine.stop()
        self.admin.close()


@pytest.fixture
def cluster(postgres_url: str, s3_blob_url: str, tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path, postgres_url, s3_blob_url)
    yield started
    started.stop()


def _finished(client: httpx.Client, version_id: int) -> dict | None:  # type: ignore[type-arg]
    version = client.get(f"/api/v1/versions/{version_id}").json()
    return version if version["status"] in ("succeeded", "failed", "cancelled") else None


def _probe_images(datasets_dir: Path) -> list[Path]:
    return [sorted((datasets_dir / "ants_bees" / "val" / label).glob("*.jpg"))[0] for label in ("ants", "bees")]


def _predict(client: httpx.Client, version_id: int, images: list[Path]) -> list[dict]:  # type: ignore[type-arg]
    response = client.post(f"/api/v1/versions/{version_id}/predict", params={"top_k": 2}, files=[("files", jpeg(p)) for p in images])
    assert response.status_code == 200, response.text
    return response.json()


def test_two_workers_on_separate_machines_train_and_a_second_api_process_predicts(  # type: ignore[no-untyped-def]
    cluster: Cluster, ant_and_bee_files, datasets_dir: Path
) -> None:
    api = cluster.api("api-1")
    _, _, model = annotated_classification_view(api, ant_and_bee_files)  # uploads through the first server
    # Each worker takes one version and exits: both take part, whichever is faster to start.
    workers = [cluster.worker(name, "--max-jobs", "1") for name in ("worker-a", "worker-b")]
    queued = [api.post(f"/api/v1/models/{model['id']}/versions", json={"name": n, "settings": TINY}).json() for n in ("one", "two")]
    assert all(v["status"] == "queued" and v["needs"] == {"accelerator": "any", "devices": 1} for v in queued)
    done = [cluster.wait_for(lambda v=v: _finished(api, v["id"]), 600, f"version {v['name']}") for v in queued]
    assert [v["status"] for v in done] == ["succeeded", "succeeded"], cluster.logs()
    for worker in workers:
        assert worker.process.wait(timeout=60) == 0, cluster.logs()

    names = cluster.worker_names()
    assert sorted(names[v["worker_id"]] for v in done) == ["worker-a", "worker-b"]  # one version each
    for version in done:  # everything a version produced is in the store, nothing only on a worker's disk
        kinds = {a["kind"] for a in version["artifacts"]}
        assert {"checkpoint", "onnx", "confusion_matrix"} <= kinds
        assert cluster.store.exists(f"versions/{version['id']}/best.pt")

    # The workers' machines are gone, scratch and caches with them.
    for worker in workers:
        assert worker.data_dir.is_dir()
        # Run directories are scratch, emptied after each run (the worker has exited: nothing is still being removed).
        assert not any((worker.data_dir / "runs").iterdir())
        shutil.rmtree(worker.data_dir)
    images = _probe_images(datasets_dir)
    first = {v["id"]: _predict(api, v["id"], images) for v in done}

    # A second API process, on a machine that has seen none of it, predicts from the store.
    other = cluster.api("api-2")
    for version in done:
        results = _predict(other, version["id"], images)
        assert [r["file"] for r in results] == [p.name for p in images]
        for mine, theirs in zip(results, first[version["id"]]):
            assert {p["label"] for p in mine["predictions"]} == {"ants", "bees"}
            assert abs(sum(p["probability"] for p in mine["predictions"]) - 1.0) < 1e-4
            # The same checkpoint: the same answer, whichever process gives it.
            for a, b in zip(mine["predictions"], theirs["predictions"]):
                assert a["label"] == b["label"] and a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    listed = other.get(f"/api/v1/models/{model['id']}/versions").json()
    assert [v["worker_id"] for v in listed] == [v["worker_id"] for v in done]


def test_a_worker_killed_on_one_machine_while_another_works_leaves_nothing_stuck(  # type: ignore[no-untyped-def]
    cluster: Cluster, ant_and_bee_files
) -> None:
    api = cluster.api("api")
    _, _, model = annotated_classification_view(api, ant_and_bee_files)
    doomed = cluster.worker("worker-a")
    endless = api.post(f"/api/v1/models/{model['id']}/versions", json={"name": "endless", "settings": ENDLESS}).json()
    url = f"/api/v1/versions/{endless['id']}"
    cluster.wait_for(lambda: api.get(f"{url}/metrics", params={"kind": "epoch"}).json(), 300, "worker-a's first epoch")
    assert cluster.worker_names()[api.get(url).json()["worker_id"]] == "worker-a"

    survivor = cluster.worker("worker-b")  # another machine, its own data directory
    other = api.post(f"/api/v1/models/{model['id']}/versions", json={"name": "other", "settings": TINY}).json()
    cluster.wait_for(lambda: api.get(f"/api/v1/versions/{other['id']}").json()["status"] == "running", 120, "worker-b's claim")
    os.kill(doomed.process.pid, signal.SIGKILL)  # mid-training, no goodbye
    doomed.process.wait()
    assert api.get(url).json()["status"] == "running"  # nobody knows yet

    # worker-b notices once worker-a's heartbeat is older than the stale period, while it trains its own version.
    failed = cluster.wait_for(lambda: (v := api.get(url).json())["status"] == "failed" and v, 120, "recovery by worker-b")
    assert failed["error"].startswith("worker stopped unexpectedly") and "silent for" in failed["error"]
    assert str(doomed.process.pid) in failed["error"] and failed["finished_at"]
    trained = cluster.wait_for(lambda: _finished(api, other["id"]), 600, "worker-b's version")
    assert trained["status"] == "succeeded", cluster.logs()
    assert cluster.worker_names()[trained["worker_id"]] == "worker-b"

    # The queue goes on: a new version after the crash is trained too.
    again = api.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert cluster.wait_for(lambda: _finished(api, again["id"]), 600, "the next version")["status"] == "succeeded"
    assert survivor.process.poll() is None
    assert not any(v["status"] in ("queued", "running") for v in api.get(f"/api/v1/models/{model['id']}/versions").json())
