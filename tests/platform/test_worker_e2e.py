"""End to end with a real worker process: train on real photos, watch metrics arrive over SSE, evaluate,
predict, export, cancel, and recover from a worker killed with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_support import annotated_classification_view, jpeg
from visiontrain.config import ServerConfig
from visiontrain.jobs.supervisor import worker_command

pytestmark = pytest.mark.slow

TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8, "early_stopping": False}
# Long enough to be caught mid-run: many tiny steps on cached features.
ENDLESS = {**TINY, "epochs": 1000, "batch_size": 1}


class Workers:
    """Worker subprocesses against the test's database and storage, stopped at the end of the test."""

    def __init__(self, config: ServerConfig, log_dir: Path):
        self.config, self.log_dir = config, log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, data_dir: Path | None = None) -> subprocess.Popen[bytes]:
        """A worker; with ``data_dir``, one on "another machine": its own scratch and caches, only the database and
        the byte store shared."""
        config = self.config
        if data_dir is not None:
            config = config.model_copy(update={"data_dir": data_dir, "blob_cache_dir": data_dir / "blob-cache"})
        log = open(self.log_dir / f"worker-{len(self.processes)}.log", "wb")
        env = {**os.environ, **config.to_env()}
        if data_dir is not None:
            env.pop("VISIONTRAIN_CACHE_DIR", None)  # the feature cache in its own data directory
        process = subprocess.Popen(worker_command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(server_config: ServerConfig, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(server_config, tmp_path)
    yield pool
    pool.stop_all()


def wait_for(condition: Callable[[], object], timeout: float, what: str, workers: Workers) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\nworker logs:\n{workers.logs()}")


def read_sse(client: TestClient, url: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    events, kind = [], "message"
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
                if kind == "end":
                    break
    return events


@pytest.mark.parametrize("blob_backend", ["local", "s3"])  # the bytes in a directory, and in the real S3 server
def test_train_watch_evaluate_predict_export(client: TestClient, workers: Workers, ant_and_bee_files, datasets_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    workers.start()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"name": "tiny", "settings": TINY}).json()

    events = read_sse(client, f"/api/v1/versions/{version['id']}/events")
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "succeeded", workers.logs()
    epochs = [e for k, e in events if k == "epoch"]
    # The default fine-tunes after the head: two head epochs, then fine-tuning's five.
    assert [(e["data"]["stage"], e["epoch"]) for e in epochs] == [("head", 1), ("head", 2), *(("fine_tune", i) for i in range(1, 6))]
    # 4 validation images: each epoch's accuracy is a count of right answers over 4.
    assert all(e["data"]["val_accuracy"] * 4 == round(e["data"]["val_accuracy"] * 4) for e in epochs)
    assert "batch" in kinds and "stage" in kinds
    ids = [e["id"] for k, e in events if k != "end"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # Resuming the stream after the last seen event repeats nothing.
    assert [k for k, _ in read_sse(client, f"/api/v1/versions/{version['id']}/events?after_id={ids[-1]}")] == ["end"]
    history = client.get(f"/api/v1/versions/{version['id']}/metrics", params={"kind": "epoch"}).json()
    assert [h["epoch"] for h in history] == [1, 2, 1, 2, 3, 4, 5]

    done = client.get(f"/api/v1/versions/{version['id']}").json()
    assert done["status"] == "succeeded" and done["error"] is None
    # The best epoch is the first with the top accuracy (fine-tuning's only when it beats the head's), and its
    # stored metrics are that epoch's.
    by_stage = {stage: {e["epoch"]: e["data"] for e in epochs if e["data"]["stage"] == stage} for stage in ("head", "fine_tune")}
    head_top = max(m["val_accuracy"] for m in by_stage["head"].values())
    kept = "fine_tune" if max(m["val_accuracy"] for m in by_stage["fine_tune"].values()) > head_top else "head"
    top = max(m["val_accuracy"] for m in by_stage[kept].values())
    assert done["best_epoch"] == min(n for n, m in by_stage[kept].items() if m["val_accuracy"] == top)
    assert done["best_metrics"]["val_accuracy"] == by_stage[kept][done["best_epoch"]]["val_accuracy"]
    assert done["headline"]["name"] == "val_accuracy"
    assert done["started_at"] <= done["finished_at"] and done["timings"]["total"] > 0
    evaluation = done["evaluation"]
    assert len(evaluation["confusion_matrix"]) == 2 and sum(map(sum, evaluation["confusion_matrix"])) == 4  # 4 validation images
    # The evaluation is of the best checkpoint: its accuracy is the best epoch's, from its own confusion matrix.
    right = sum(evaluation["confusion_matrix"][i][i] for i in range(2))
    assert evaluation["accuracy"] == right / 4 == done["best_metrics"]["val_accuracy"]
    # Every validation image's prediction, named by the content-addressed copy the worker trained on:
    # its sha256 finds the version's sample (and so the project image the studio shows).
    samples = {s["sha256"]: s for s in client.get(f"/api/v1/versions/{version['id']}/samples").json()}
    assert len(evaluation["predictions"]) == 4
    for prediction in evaluation["predictions"]:
        sample = samples[re.search(r"[0-9a-f]{64}", prediction["path"]).group(0)]
        assert sample["split"] == "val" and sample["annotation"] == prediction["true"] and sample["image_id"] is not None
    assert {a["kind"] for a in done["artifacts"]} >= {"checkpoint", "onnx"}

    probe = [sorted((datasets_dir / "ants_bees" / "val" / label).glob("*.jpg"))[0] for label in ("ants", "bees")]
    predicted = client.post(f"/api/v1/versions/{version['id']}/predict", params={"top_k": 2}, files=[("files", jpeg(p)) for p in probe])
    assert predicted.status_code == 200, predicted.text
    results = predicted.json()
    assert [r["file"] for r in results] == [p.name for p in probe]
    for result in results:
        assert {p["label"] for p in result["predictions"]} == {"ants", "bees"}
        assert abs(sum(p["probability"] for p in result["predictions"]) - 1.0) < 1e-4
    not_image = client.post(f"/api/v1/versions/{version['id']}/predict", files=[("files", ("x.jpg", b"not an image", "image/jpeg"))])
    assert not_image.status_code == 400 and "x.jpg" in not_image.json()["detail"]

    checkpoint = client.get(f"/api/v1/versions/{version['id']}/export/checkpoint")
    assert checkpoint.status_code == 200 and len(checkpoint.content) > 100_000
    onnx_file = client.get(f"/api/v1/versions/{version['id']}/export/onnx")
    assert onnx_file.status_code == 200
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_file.content, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    [output] = session.run(None, {session.get_inputs()[0].name: np.zeros(shape, dtype=np.float32)})
    assert output.shape == (1, 2)


def test_cancel_stops_a_running_version_and_keeps_its_best_checkpoint(client: TestClient, workers: Workers, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    workers.start()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": ENDLESS}).json()
    url = f"/api/v1/versions/{version['id']}"
    wait_for(lambda: client.get(f"{url}/metrics", params={"kind": "epoch"}).json(), 120, "the first epoch", workers)
    assert client.post(f"{url}/cancel").json()["cancel_requested"] is True
    # The deadline only guards against a hang; how fast a cancel lands is measured by the benchmarks.
    wait_for(lambda: client.get(url).json()["status"] == "cancelled", 120, "the cancellation", workers)
    cancelled = client.get(url).json()
    assert cancelled["finished_at"] and cancelled["best_epoch"] >= 1 and cancelled["error"] is None
    assert cancelled["summary"]["status"] == "cancelled" and cancelled["summary"]["epochs_run"]["head"] < ENDLESS["epochs"]
    statuses = client.get(f"{url}/metrics", params={"kind": "status"}).json()
    assert statuses and statuses[-1]["data"]["status"] == "cancelled"
    assert any(a["kind"] == "checkpoint" for a in cancelled["artifacts"])  # the best so far is kept


def test_a_worker_killed_mid_training_leaves_no_version_running(client: TestClient, workers: Workers, ant_and_bee_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    doomed = workers.start()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": ENDLESS}).json()
    url = f"/api/v1/versions/{version['id']}"
    wait_for(lambda: client.get(f"{url}/metrics", params={"kind": "epoch"}).json(), 120, "the first epoch", workers)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert client.get(url).json()["status"] == "running"  # nobody knows yet
    # The next worker, on "another machine" (its own data directory), notices once the dead one's heartbeat is
    # older than the stale period.
    elsewhere = tmp_path / "another-machine"
    workers.start(data_dir=elsewhere)
    failed = wait_for(lambda: (v := client.get(url).json())["status"] == "failed" and v, 60, "recovery", workers)
    assert failed["error"].startswith("worker stopped unexpectedly") and str(doomed.pid) in failed["error"]
    assert "silent for" in failed["error"]  # judged by its heartbeat, not by its pid
    # The new worker trains the next version normally.
    again = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    wait_for(lambda: client.get(f"/api/v1/versions/{again['id']}").json()["status"] == "succeeded", 180, "the next version", workers)
    # It ran there (its scratch directory), and leaves nothing in it once the run is stored.
    assert (elsewhere / "runs").is_dir()
    wait_for(lambda: not any((elsewhere / "runs").iterdir()), 60, "the run directory's removal", workers)


def test_a_worker_stopped_gracefully_gives_its_version_back(client: TestClient, workers: Workers, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    worker = workers.start()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": ENDLESS}).json()
    url = f"/api/v1/versions/{version['id']}"
    wait_for(lambda: client.get(f"{url}/metrics", params={"kind": "epoch"}).json(), 120, "the first epoch", workers)
    worker.terminate()
    assert worker.wait(timeout=30) == 0, workers.logs()
    requeued = client.get(url).json()
    assert requeued["status"] == "queued" and requeued["started_at"] is None and requeued["error"] is None
    assert client.get(f"{url}/metrics").json() == []  # the next run starts a clean history
    assert client.post(f"{url}/cancel").json()["status"] == "cancelled"
