"""`visiontrain serve --workers N`: supervised workers share out the machine's GPUs instead of all taking every one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from visiontrain.config import ServerConfig
from visiontrain.jobs import supervisor
from visiontrain.jobs.supervisor import WorkerSupervisor, gpu_assignments


def test_gpus_are_dealt_out_so_no_two_workers_share_one() -> None:
    assert gpu_assignments(2, ["0", "1", "2", "3"]) == ["0,2", "1,3"]
    assert gpu_assignments(4, ["0", "1"]) == ["0", "1", "", ""]  # the others run on the CPU
    assert gpu_assignments(3, ["GPU-a", "GPU-b", "GPU-c"]) == ["GPU-a", "GPU-b", "GPU-c"]
    assert gpu_assignments(1, ["0", "1"]) == [None]  # one worker keeps the environment: every GPU
    assert gpu_assignments(3, []) == [None, None, None]  # no GPU: nothing to share


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert supervisor.visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert supervisor.visible_gpus() == []


def test_each_worker_and_its_replacement_start_on_their_own_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str | None] = []

    class Recorded:
        pid = 12345

        def __init__(self, command: list[str], env: dict[str, str]) -> None:
            started.append(env.get("CUDA_VISIBLE_DEVICES"))

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(subprocess, "Popen", Recorded)
    workers = WorkerSupervisor(ServerConfig(data_dir=tmp_path), count=2, gpus=["0", "1", "2"])
    workers.processes = [workers._spawn(index) for index in range(2)]
    workers._spawn(1)  # what the watcher does when worker 1 dies
    assert started == ["0,2", "1", "1"]
    assert WorkerSupervisor(ServerConfig(data_dir=tmp_path), count=1).gpus == [None]
