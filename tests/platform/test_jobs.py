"""The job queue without training: atomic claims, recovery from dead or silent workers, graceful requeue."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from platform_support import annotated_classification_view
from visiontrain.jobs import queue
from visiontrain.services.platform import Platform
from visiontrain.store.base import utcnow
from visiontrain.store.models import ModelVersion, VersionMetric, Worker


def _queue_versions(client: TestClient, files, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, files)
    return [client.post(f"/api/v1/models/{model['id']}/versions", json={}).json()["id"] for _ in range(count)]


def _worker(platform: Platform, pid: int | None = None) -> str:
    with platform.sessions() as session:
        worker = queue.register_worker(session)
        if pid is not None:
            worker.pid = pid
        session.commit()
        return worker.id


def test_concurrent_claims_never_hand_out_a_version_twice(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    version_ids = _queue_versions(client, ant_and_bee_files, 6)
    workers = [_worker(platform) for _ in range(4)]
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(workers))

    def claim_all(worker_id: str) -> None:
        start.wait()
        while True:
            with platform.sessions() as session:
                version_id = queue.claim_next(session, worker_id=worker_id)
            if version_id is None:
                return
            with lock:
                claimed.append((worker_id, version_id))

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(v for _, v in claimed) == version_ids  # each exactly once
    with platform.sessions() as session:
        rows = session.execute(select(ModelVersion.id, ModelVersion.status, ModelVersion.worker_id)).all()
    assert {status for _, status, _ in rows} == {"running"}
    assert {(w, v) for v, _, w in rows} == set(claimed)


def test_a_cancelled_version_is_not_claimed(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    [version_id] = _queue_versions(client, ant_and_bee_files, 1)
    client.post(f"/api/v1/versions/{version_id}/cancel")
    with platform.sessions() as session:
        assert queue.claim_next(session, worker_id=_worker(platform)) is None


def test_versions_of_a_dead_worker_process_are_marked_failed(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    version_id, other_id = _queue_versions(client, ant_and_bee_files, 2)
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()  # reaped: its pid no longer exists
    dead = _worker(platform, pid=dead_pid.pid)
    alive = _worker(platform)
    with platform.sessions() as session:
        assert queue.claim_next(session, worker_id=dead) == version_id
        assert queue.claim_next(session, worker_id=alive) == other_id
        failed = queue.recover_stale(session, stale_after_seconds=60, current_worker_id=None)
    assert failed == [version_id]
    version = client.get(f"/api/v1/versions/{version_id}").json()
    assert version["status"] == "failed"
    assert version["error"].startswith("worker stopped unexpectedly (worker process") and "is gone" in version["error"]
    assert client.get(f"/api/v1/versions/{other_id}").json()["status"] == "running"


def test_a_silent_worker_is_given_up_after_the_stale_period(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    [version_id] = _queue_versions(client, ant_and_bee_files, 1)
    silent = _worker(platform)
    with platform.sessions() as session:
        queue.claim_next(session, worker_id=silent)
        session.execute(update(Worker).where(Worker.id == silent).values(hostname="elsewhere", heartbeat_at=utcnow() - timedelta(seconds=120)))
        session.commit()
        assert queue.recover_stale(session, stale_after_seconds=300) == []  # not stale yet by this measure
        assert queue.recover_stale(session, stale_after_seconds=60) == [version_id]
    assert "silent for 1" in client.get(f"/api/v1/versions/{version_id}").json()["error"]


def test_requeue_gives_the_version_back_without_its_partial_metrics(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    [version_id] = _queue_versions(client, ant_and_bee_files, 1)
    worker = _worker(platform)
    with platform.sessions() as session:
        queue.claim_next(session, worker_id=worker)
        session.add(VersionMetric(version_id=version_id, kind="batch", stage="head", epoch=1, step=1, time=0.1, data={"loss": 1.0}))
        session.commit()
        assert queue.requeue(session, version_id=version_id, worker_id=worker)
        session.commit()
    assert client.get(f"/api/v1/versions/{version_id}").json()["status"] == "queued"
    assert client.get(f"/api/v1/versions/{version_id}/metrics").json() == []


def test_a_version_whose_images_vanished_fails_with_the_reason(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.jobs.worker import TrainingWorker

    [version_id] = _queue_versions(client, ant_and_bee_files, 1)
    sample = client.get(f"/api/v1/versions/{version_id}/samples").json()[0]
    missing = next(p for p in platform.config.data_dir.joinpath("blobs").rglob("*") if p.is_file() and p.name.startswith(sample["sha256"]))
    missing.unlink()
    worker = TrainingWorker(platform)
    worker.worker_id = _worker(platform)
    with platform.sessions() as session:
        assert queue.claim_next(session, worker_id=worker.worker_id) == version_id
    worker.run_version(version_id)
    failed = client.get(f"/api/v1/versions/{version_id}").json()
    assert failed["status"] == "failed" and failed["finished_at"]
    assert failed["error"].startswith(f"image {sample['image_name']} is missing from storage") and sample["sha256"] in failed["error"]

