"""Worker subprocesses for ``visiontrain serve``: started beside the web server, restarted if they die, stopped with it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

from visiontrain.config import ServerConfig

log = logging.getLogger("visiontrain.supervisor")
STOP_GRACE_SECONDS = 30.0
# Tells a worker which process started it: if that process dies (even by SIGKILL), the worker stops too.
SUPERVISOR_PID_ENV = "VISIONTRAIN_SUPERVISOR_PID"
RESTART_DELAY_SECONDS = 2.0


def worker_command() -> list[str]:
    return [sys.executable, "-m", "visiontrain.cli.main", "worker"]


def gpu_assignments(count: int, visible: list[str]) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each of ``count`` supervised workers: this machine's GPUs (``visible``)
    dealt out in turn, so no two workers train on one GPU. None leaves the environment as it is (one worker,
    or no GPU); with more workers than GPUs the others get none and run on the CPU."""
    if count <= 1 or not visible:
        return [None] * count
    return [",".join(visible[index::count]) for index in range(count)]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices, or the ones it lists)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip()]
    from visiontrain.settings_check import gpu_count

    return [str(index) for index in range(gpu_count())]


class WorkerSupervisor:
    """Keeps ``count`` worker processes running against ``config``'s database and storage; several share out
    the machine's GPUs (``gpu_assignments``)."""

    def __init__(self, config: ServerConfig, count: int = 1, gpus: list[str] | None = None):
        self.config, self.count = config, count
        # Asked only for several workers: one never needs PyTorch loaded here to count GPUs.
        self.gpus = gpu_assignments(count, gpus if gpus is not None else (visible_gpus() if count > 1 else []))
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.config.to_env(), SUPERVISOR_PID_ENV: str(os.getpid())}
        if self.gpus[index] is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[index]  # type: ignore[assignment]
        process = subprocess.Popen(worker_command(), env=env)
        log.info("started worker process %d%s", process.pid,
                 "" if self.gpus[index] is None else f" on GPU(s) {self.gpus[index] or 'none (CPU)'}")
        return process

    def start(self) -> None:
        self.processes = [self._spawn(index) for index in range(self.count)]
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self.processes):
                code = process.poll()
                if code is None or self._stopping.is_set():
                    continue
                # A worker that died mid-training left its version "running": the new worker's start-up
                # recovery marks it failed with the reason.
                log.warning("worker process %d exited with code %s; starting another", process.pid, code)
                time.sleep(RESTART_DELAY_SECONDS)
                if not self._stopping.is_set():
                    self.processes[index] = self._spawn(index)  # the same GPUs as the one it replaces
                    self.restarts += 1

    def stop(self) -> None:
        """SIGTERM (a run in progress goes back to the queue), then SIGKILL after the grace period."""
        self._stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
