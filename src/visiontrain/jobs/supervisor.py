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


class WorkerSupervisor:
    """Keeps ``count`` worker processes running against ``config``'s database and storage."""

    def __init__(self, config: ServerConfig, count: int = 1):
        self.config, self.count = config, count
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.config.to_env(), SUPERVISOR_PID_ENV: str(os.getpid())}
        process = subprocess.Popen(worker_command(), env=env)
        log.info("started worker process %d", process.pid)
        return process

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]
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
                    self.processes[index] = self._spawn()
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
