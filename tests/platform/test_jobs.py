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


def _claim_all_at_once(platform: Platform, workers: list[str]) -> list[tuple[str, int]]:
    """Every worker claims in its own thread, all starting together, until the queue has nothing for it;
    the (worker, version) pairs claimed."""
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
    return claimed


def test_concurrent_claims_never_hand_out_a_version_twice(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    version_ids = _queue_versions(client, ant_and_bee_files, 6)
    workers = [_worker(platform) for _ in range(4)]
    claimed = _claim_all_at_once(platform, list(workers))
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


def test_a_worker_is_judged_by_its_heartbeat_not_its_process_id(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    """A worker in another container shares the hostname but not the PID namespace: its pid is not visible
    here, yet it is alive and beating. Only a heartbeat older than the stale period gives it up."""
    version_id, other_id = _queue_versions(client, ant_and_bee_files, 2)
    invisible = subprocess.Popen([sys.executable, "-c", "pass"])
    invisible.wait()  # reaped: no process with this pid exists in this namespace
    elsewhere = _worker(platform, pid=invisible.pid)  # same hostname (register_worker records this one's)
    alive = _worker(platform)
    with platform.sessions() as session:
        assert queue.claim_next(session, worker_id=elsewhere) == version_id
        assert queue.claim_next(session, worker_id=alive) == other_id
        assert queue.recover_stale(session, stale_after_seconds=60, current_worker_id=None) == []
        session.execute(update(Worker).where(Worker.id == elsewhere).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
        session.commit()
        assert queue.recover_stale(session, stale_after_seconds=60, current_worker_id=None) == [version_id]
    version = client.get(f"/api/v1/versions/{version_id}").json()
    assert version["status"] == "failed"
    assert version["error"].startswith("worker stopped unexpectedly (worker") and "silent for 1" in version["error"]
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



def _claimed_by_a_worker(platform: Platform, version_id: int):  # type: ignore[no-untyped-def]
    from visiontrain.jobs.worker import TrainingWorker

    worker = TrainingWorker(platform)
    worker.worker_id = _worker(platform)
    with platform.sessions() as session:
        assert queue.claim_next(session, worker_id=worker.worker_id) == version_id
    return worker


def _given_up_by_recovery(platform: Platform, worker_id: str) -> list[int]:
    with platform.sessions() as session:
        session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow() - timedelta(seconds=600)))
        session.commit()
        return queue.recover_stale(session, stale_after_seconds=60)


def test_results_of_a_version_given_up_by_recovery_are_not_stored(client: TestClient, platform: Platform, ant_and_bee_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.models.checkpoint import CHECKPOINT_NAME
    from visiontrain.store.models import Artifact

    version_id, owned_id = _queue_versions(client, ant_and_bee_files, 2)
    worker = _claimed_by_a_worker(platform, version_id)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CHECKPOINT_NAME).write_bytes(b"weights")
    (run_dir / "confusion_matrix.png").write_bytes(b"png")
    assert _given_up_by_recovery(platform, worker.worker_id) == [version_id]
    worker._store_results(version_id, run_dir, {"status": "cancelled", "best_epoch": 3})
    with platform.sessions() as session:
        assert session.scalars(select(Artifact).where(Artifact.version_id == version_id)).all() == []
    assert not platform.blobs.exists(f"versions/{version_id}/{CHECKPOINT_NAME}")
    version = client.get(f"/api/v1/versions/{version_id}").json()
    assert version["status"] == "failed" and version["error"].startswith("worker stopped unexpectedly")
    assert version["best_epoch"] is None

    # The same call for a version the worker still owns stores everything (the test above is not vacuous).
    worker = _claimed_by_a_worker(platform, owned_id)
    worker._store_results(owned_id, run_dir, {"status": "cancelled", "best_epoch": 3})
    with platform.sessions() as session:
        kinds = sorted(a.kind for a in session.scalars(select(Artifact).where(Artifact.version_id == owned_id)))
    assert kinds == ["checkpoint", "confusion_matrix"]
    assert platform.blobs.exists(f"versions/{owned_id}/{CHECKPOINT_NAME}")
    assert client.get(f"/api/v1/versions/{owned_id}").json()["status"] == "cancelled"


def test_the_cancel_poll_stops_a_version_that_is_no_longer_this_workers(client: TestClient, platform: Platform, ant_and_bee_files, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.jobs import worker as worker_module

    monkeypatch.setattr(worker_module, "CANCEL_POLL_SECONDS", 0.0)  # read the database on every call
    version_id, other_id = _queue_versions(client, ant_and_bee_files, 2)
    worker = _claimed_by_a_worker(platform, version_id)
    poll = worker_module._CancelPoll(worker, version_id)
    assert poll() is False and poll.given_up is None
    assert _given_up_by_recovery(platform, worker.worker_id) == [version_id]
    assert poll() is True
    assert poll.given_up == "it is failed" and poll.cancel_requested is False  # not a user's cancel

    worker = _claimed_by_a_worker(platform, other_id)
    poll = worker_module._CancelPoll(worker, other_id)
    assert poll() is False
    client.post(f"/api/v1/versions/{other_id}/cancel")
    assert poll() is True and poll.cancel_requested is True and poll.given_up is None


class _FlakySessions:
    """A session factory whose first ``failures`` sessions fail to commit, like a database that went away."""

    def __init__(self, sessions, failures: int):  # type: ignore[no-untyped-def]
        self.sessions, self.failures, self.calls = sessions, failures, 0

    def __call__(self):  # type: ignore[no-untyped-def]
        from sqlalchemy.exc import OperationalError

        self.calls += 1
        session = self.sessions()
        if self.calls <= self.failures:
            def broken_commit() -> None:
                raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))

            session.commit = broken_commit
        return session


def test_a_database_error_while_storing_metrics_does_not_reach_the_training(client: TestClient, platform: Platform, ant_and_bee_files, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.jobs import metrics
    from visiontrain.jobs.metrics import MetricsWriter

    monkeypatch.setattr(metrics, "RETRY_SECONDS", 0.0)
    [version_id] = _queue_versions(client, ant_and_bee_files, 1)
    flaky = _FlakySessions(platform.sessions, failures=2)
    writer = MetricsWriter(flaky, version_id)  # type: ignore[arg-type]
    events = [{"type": "epoch", "stage": "head", "epoch": n, "val_accuracy": n / 10} for n in (1, 2, 3)]
    writer(events[0])  # the engine's callback: no exception although the write failed
    writer(events[1])  # failed again: both kept
    assert (writer.pending, writer.written, writer.failures) == (2, 0, 2)
    writer(events[2])  # the database is back: all three, in order
    assert (writer.pending, writer.written) == (0, 3)
    stored = client.get(f"/api/v1/versions/{version_id}/metrics").json()
    assert [row["epoch"] for row in stored] == [1, 2, 3]

    # The last flush retries; when every attempt fails it says so and keeps the rows.
    writer = MetricsWriter(_FlakySessions(platform.sessions, failures=4), version_id)  # type: ignore[arg-type]
    writer({"type": "batch", "stage": "head", "step": 1, "loss": 0.5})
    import pytest
    from sqlalchemy.exc import OperationalError

    with pytest.raises(OperationalError):
        writer.flush(attempts=2, wait_seconds=0.0)
    assert writer.pending == 1
    writer.flush(attempts=3, wait_seconds=0.0)  # two more failures, then a success
    assert writer.pending == 0 and writer.written == 1


def test_metrics_buffered_through_a_long_outage_stay_bounded_and_keep_the_epochs(monkeypatch) -> None:
    from visiontrain.jobs import metrics
    from visiontrain.jobs.metrics import MetricsWriter

    monkeypatch.setattr(metrics, "MAX_BUFFERED", 10)

    def down():  # type: ignore[no-untyped-def]
        raise ConnectionError("database unreachable")

    writer = MetricsWriter(down, version_id=1)  # type: ignore[arg-type]
    for step in range(30):
        writer({"type": "batch", "stage": "head", "step": step})
        if step % 10 == 9:
            writer({"type": "epoch", "stage": "head", "epoch": step // 10 + 1})
    assert writer.pending <= 10 + 3
    kept = writer._buffer
    assert [e["epoch"] for e in kept if e["type"] == "epoch"] == [1, 2, 3]
    assert writer.dropped == 33 - writer.pending


# --- capabilities: a worker claims only the versions it can run

GPU_SETTINGS = {"any": {}, "cpu": {"accelerator": "cpu"}, "gpu1": {"accelerator": "gpu"},
                "gpu2": {"accelerator": "gpu", "devices": 2}, "auto2": {"devices": 2}}


def _worker_with(platform: Platform, accelerator: str, devices: int, name: str) -> str:
    with platform.sessions() as session:
        worker = queue.register_worker(session, queue.Capabilities(accelerator, devices, name))
        session.commit()
        return worker.id


def _queue_needing(client: TestClient, files, kinds: list[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, files)
    made = {}
    for kind in kinds:
        response = client.post(f"/api/v1/models/{model['id']}/versions", json={"name": kind, "settings": GPU_SETTINGS[kind]})
        assert response.status_code == 201, response.text
        made[kind] = response.json()["id"]
    return made


def _claims(platform: Platform, worker_id: str) -> list[int]:
    taken = []
    with platform.sessions() as session:
        while (version_id := queue.claim_next(session, worker_id=worker_id)) is not None:
            taken.append(version_id)
    return taken


def test_a_version_records_what_it_needs_from_its_settings(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _worker_with(platform, "gpu", 2, "gpu-box")  # a running 2-GPU worker: GPU versions are accepted on this CPU-only server
    made = _queue_needing(client, ant_and_bee_files, list(GPU_SETTINGS))
    needs = {kind: client.get(f"/api/v1/versions/{vid}").json()["needs"] for kind, vid in made.items()}
    assert needs == {"any": {"accelerator": "any", "devices": 1}, "cpu": {"accelerator": "cpu", "devices": 1},
                     "gpu1": {"accelerator": "gpu", "devices": 1}, "gpu2": {"accelerator": "gpu", "devices": 2},
                     "auto2": {"accelerator": "any", "devices": 2}}
    with platform.sessions() as session:  # in the indexed columns, as the claim reads them
        rows = dict(session.execute(select(ModelVersion.name, ModelVersion.needs_devices)).all())
    assert rows == {"any": 1, "cpu": 1, "gpu1": 1, "gpu2": 2, "auto2": 2}


def test_each_worker_claims_only_versions_that_fit_it(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    two_gpus = _worker_with(platform, "gpu", 2, "gpu-box")
    made = _queue_needing(client, ant_and_bee_files, ["gpu2", "gpu1", "any", "cpu", "auto2"])
    cpu = _worker_with(platform, "cpu", 1, "laptop")  # one core: one process
    one_gpu = _worker_with(platform, "gpu", 1, "small-gpu")
    # The CPU worker skips the older GPU versions and takes what runs on a CPU, oldest first.
    assert _claims(platform, cpu) == [made["any"], made["cpu"]]
    # The 1-GPU worker takes the 1-GPU version and leaves both 2-device ones.
    assert _claims(platform, one_gpu) == [made["gpu1"]]
    assert client.get(f"/api/v1/versions/{made['gpu2']}").json()["status"] == "queued"
    assert _claims(platform, two_gpus) == [made["gpu2"], made["auto2"]]
    owners = {v["name"]: v["worker_id"] for v in client.get(f"/api/v1/models/{_model_of(client, made['any'])}/versions").json()}
    assert owners == {"gpu2": two_gpus, "gpu1": one_gpu, "any": cpu, "cpu": cpu, "auto2": two_gpus}


def _model_of(client: TestClient, version_id: int) -> int:
    return client.get(f"/api/v1/versions/{version_id}").json()["model_id"]


def test_a_gpu_worker_also_takes_what_runs_anywhere_and_cpu_cores_count_as_devices(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    gpu = _worker_with(platform, "gpu", 1, "gpu-box")
    cores = _worker_with(platform, "cpu", 2, "two-cores")
    made = _queue_needing(client, ant_and_bee_files, ["cpu", "auto2", "any", "gpu1"])
    # Two CPU processes: a 2-core CPU worker's, never a GPU worker's (its cores are not counted).
    two_on_cpu = client.post(f"/api/v1/models/{_model_of(client, made['cpu'])}/versions",
                             json={"name": "cpu2", "settings": {"accelerator": "cpu", "devices": 2}})
    assert two_on_cpu.status_code == 201, two_on_cpu.text
    assert two_on_cpu.json()["needs"] == {"accelerator": "cpu", "devices": 2}
    assert _claims(platform, gpu) == [made["cpu"], made["any"], made["gpu1"]]
    assert _claims(platform, cores) == [made["auto2"], two_on_cpu.json()["id"]]


def test_concurrent_workers_of_every_kind_share_a_mixed_queue_without_a_misfit(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    kinds = [("gpu", 2), ("gpu", 1), ("cpu", 1), ("cpu", 2)]
    workers = {_worker_with(platform, a, d, f"{a}{d}-{i}"): (a, d) for i, (a, d) in enumerate(kinds)}
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    wanted = ["any", "gpu1", "cpu", "gpu2", "auto2", "any", "gpu1", "cpu", "gpu2", "auto2", "any", "cpu"]
    ids = {}
    for number, kind in enumerate(wanted):
        ids[client.post(f"/api/v1/models/{model['id']}/versions", json={"name": f"{kind}-{number}", "settings": GPU_SETTINGS[kind]}).json()["id"]] = kind
    claimed = _claim_all_at_once(platform, list(workers))
    assert sorted(v for _, v in claimed) == sorted(ids)  # every version once: each kind has a worker that fits
    for worker_id, version_id in claimed:
        accelerator, devices = workers[worker_id]
        needs = queue.requirements(GPU_SETTINGS[ids[version_id]])
        assert queue.can_run(queue.Capabilities(accelerator, devices), needs), (workers[worker_id], ids[version_id])
    assert any(workers[w] == ("gpu", 2) for w, v in claimed if ids[v] == "gpu2")


def test_a_version_no_running_worker_fits_says_what_it_waits_for(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    big = _worker_with(platform, "gpu", 2, "gpu-box")
    made = _queue_needing(client, ant_and_bee_files, ["gpu2", "any"])
    url = f"/api/v1/versions/{made['gpu2']}"
    assert client.get(url).json()["waiting_for"] is None  # the 2-GPU worker is running: it will take it
    with platform.sessions() as session:
        queue.mark_stopped(session, worker_id=big)
        session.commit()
    assert client.get(url).json()["waiting_for"] == "waiting for a worker with 2 GPUs: no worker is running (start one with `visiontrain worker`)"
    _worker_with(platform, "cpu", 1, "laptop")
    _worker_with(platform, "gpu", 1, "small-gpu")
    with platform.sessions() as session:  # a worker silent for longer than the stale period is not counted
        silent = queue.register_worker(session, queue.Capabilities("gpu", 4, "silent-box"))
        silent.heartbeat_at = utcnow() - timedelta(seconds=600)
        session.commit()
    waiting = client.get(url).json()["waiting_for"]
    assert waiting == ("waiting for a worker with 2 GPUs (`visiontrain worker --gpus N` on a GPU machine); "
                       "the running workers have: laptop (CPU, 1 core), small-gpu (1 GPU)")
    assert client.get(f"/api/v1/versions/{made['any']}").json()["waiting_for"] is None  # any worker runs it
    # Once claimed, it no longer waits.
    _worker_with(platform, "gpu", 2, "gpu-box-2")
    assert client.get(url).json()["waiting_for"] is None


def test_hardware_no_running_worker_has_is_refused_naming_the_field(client: TestClient, platform: Platform, ant_and_bee_files, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from visiontrain import settings_check

    monkeypatch.setattr(settings_check, "gpu_count", lambda: 0)  # this server has no GPU, whatever this machine is
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    url = f"/api/v1/models/{model['id']}/versions"
    _worker_with(platform, "gpu", 2, "gpu-box")
    refused = client.post(url, json={"settings": {"accelerator": "gpu", "devices": 3}})
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert tuple(error["loc"]) == ("body", "settings", "accelerator")
    assert "no CUDA GPU" in error["msg"] and error["msg"].endswith("and no running worker has 3 GPUs either")
    assert client.post(url, json={"settings": {"accelerator": "gpu", "devices": 2}}).status_code == 201


def test_a_cpu_worker_trains_auto_on_its_cpu_and_a_gpu_worker_leaves_auto_to_the_engine(platform: Platform) -> None:
    from visiontrain.jobs.worker import TrainingWorker
    from visiontrain.settings import TrainingSettings

    auto = TrainingSettings()
    on_cpu = TrainingWorker(platform, queue.Capabilities("cpu", 1))._on_this_worker(auto)
    assert on_cpu.accelerator == "cpu" and auto.accelerator == "auto"
    assert TrainingWorker(platform, queue.Capabilities("gpu", 1))._on_this_worker(auto).accelerator == "auto"
    gpu = TrainingSettings(accelerator="gpu")
    assert TrainingWorker(platform, queue.Capabilities("gpu", 2))._on_this_worker(gpu).accelerator == "gpu"


def test_worker_capabilities_are_checked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from visiontrain import settings_check

    monkeypatch.setattr(settings_check, "gpu_count", lambda: 2)
    assert queue.Capabilities.of_this_machine() == queue.Capabilities("gpu", 2)
    assert queue.Capabilities.of_this_machine(gpus=1, name="a") == queue.Capabilities("gpu", 1, "a")
    import os

    cores = len(os.sched_getaffinity(0))
    assert queue.Capabilities.of_this_machine(gpus=0) == queue.Capabilities("cpu", cores)  # a CPU worker on a GPU machine
    with pytest.raises(ValueError, match="asked for 3 GPUs but this machine has 2"):
        queue.Capabilities.of_this_machine(gpus=3)
    monkeypatch.setattr(settings_check, "gpu_count", lambda: 0)
    assert queue.Capabilities.of_this_machine() == queue.Capabilities("cpu", cores)
    with pytest.raises(ValueError, match="a gpu worker needs at least 1 device, not 0"):
        queue.Capabilities("gpu", 0)
    assert queue.describe_needs(("any", 2)) == "2 GPUs or 2 CPU cores" and queue.describe_needs(("any", 1)) == "a CPU or a GPU"


def test_a_sweeps_trials_go_only_to_workers_that_fit_its_settings(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.jobs.sweeps import SweepJobs
    from visiontrain.jobs.worker import TrainingWorker
    from visiontrain.store.models import Sweep

    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    created = client.post(f"/api/v1/models/{model['id']}/sweeps", json={"trials": 2, "settings": {"epochs": 1}})
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    cpu_jobs = SweepJobs(TrainingWorker(platform, queue.Capabilities("cpu", 1)))
    gpu_jobs = SweepJobs(TrainingWorker(platform, queue.Capabilities("gpu", 1)))
    with platform.sessions() as session:
        assert cpu_jobs._next_fitting_sweep(session) == sweep_id == gpu_jobs._next_fitting_sweep(session)
        # The same sweep made by a server that accepted a GPU for it (one of its workers had one).
        sweep = session.get(Sweep, sweep_id)
        sweep.settings = {**sweep.settings, "accelerator": "gpu"}
        session.commit()
        assert cpu_jobs._next_fitting_sweep(session) is None
        assert gpu_jobs._next_fitting_sweep(session) == sweep_id


def test_a_starting_worker_removes_the_scratch_a_killed_worker_left_but_not_a_running_versions(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.jobs.worker import TrainingWorker

    running, finished = _queue_versions(client, ant_and_bee_files, 2)
    other = _worker(platform)
    with platform.sessions() as session:
        assert queue.claim_next(session, worker_id=other) == running  # another worker of this machine trains it
        session.execute(update(ModelVersion).where(ModelVersion.id == finished).values(status="failed"))
        session.commit()
    runs = platform.config.runs_dir
    kept = [runs / f"version-{running}", runs / f"version-{running}-images"]
    left = [runs / f"version-{finished}", runs / f"version-{finished}-images", runs / "version-999999-images"]
    for path in kept + left:
        (path / "images").mkdir(parents=True)
        (path / "images" / "photo.jpg").write_bytes(b"bytes")
    (runs / "notes").mkdir()

    TrainingWorker(platform)._remove_dead_runs_scratch()

    assert all(path.is_dir() for path in kept)
    assert not any(path.exists() for path in left)
    assert (runs / "notes").is_dir()  # not a run's: left alone


def test_a_worker_silent_for_longer_than_the_servers_stale_period_is_not_counted_as_running(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    """The API judges liveness by the server's configured period (5 s here), not the 60 s default."""
    assert platform.config.stale_after_seconds == 5
    big = _worker_with(platform, "gpu", 2, "gpu-box")
    made = _queue_needing(client, ant_and_bee_files, ["gpu2"])
    url = f"/api/v1/versions/{made['gpu2']}"
    assert client.get(url).json()["waiting_for"] is None
    with platform.sessions() as session:
        session.get(Worker, big).heartbeat_at = utcnow() - timedelta(seconds=30)  # past 5 s, within 60 s
        session.commit()
    assert client.get(url).json()["waiting_for"] == (
        "waiting for a worker with 2 GPUs: no worker is running (start one with `visiontrain worker`)")
    model_id = _model_of(client, made["gpu2"])
    refused = client.post(f"/api/v1/models/{model_id}/versions", json={"name": "again", "settings": GPU_SETTINGS["gpu2"]})
    assert refused.status_code == 422 and "no running worker has 2 GPUs" in refused.text, refused.text
