"""Micro-batching: the images of concurrent prediction requests to one model gathered into one model call.

A request's thread decodes its own images (requests decode in parallel, outside the model call), then
hands the tensors to the model's :class:`MicroBatcher` and waits. The batcher's one thread takes the
first waiting request, gathers the others that arrive within ``max_wait_s`` (or are already waiting)
up to ``max_batch`` images, runs the network once on all of them, and gives each request its own
rows. A network that scores each image on its own (a head model in eval mode: no batch statistics)
gives every image the same probabilities whatever it was batched with, up to float rounding.

Why a thread and not the event loop: the network call takes tens of milliseconds of CPU; run on the
loop it would stall every other request.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger(__name__)

MAX_BATCH = 32  # images per model call: ONNX Runtime on the CPU gains little beyond (93/s at 32 vs 49-61/s one by one)
# How long the first request of a batch waits for company when the model is idle. 0 by default: a call
# takes every image already waiting, and the images arriving while it runs make the next one (Triton's
# default too). With 8 clients a 5 ms wait made each batch wait its whole 5 ms for requests still being
# decoded: 78 predictions/s against 88 without (benchmarks/load_check.py, docs/benchmarks.md).
MAX_WAIT_MS = 0.0


@dataclass
class _Job:
    inputs: torch.Tensor  # (n, C, H, W), n <= max_batch
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    """What the batcher did so far (read by the tests and the load check)."""

    requests: int = 0  # jobs run (a request of more than max_batch images is several)
    images: int = 0
    model_calls: int = 0
    largest_batch: int = 0


class MicroBatcher:
    """One thread that runs ``run`` on batches gathered from concurrent :meth:`predict` calls."""

    def __init__(self, run: Callable[[torch.Tensor], np.ndarray], *, max_batch: int = MAX_BATCH,
                 max_wait_ms: float = MAX_WAIT_MS, name: str = "micro-batcher"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1; got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more; got {max_wait_ms}")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.stats = BatchStats()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        # Held while a caller enqueues and while close() enqueues the stop: no job can land after the stop,
        # where the exiting thread would never run it and its caller would wait for ever.
        self._closing = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def predict(self, inputs: torch.Tensor) -> np.ndarray:
        """The network's output rows for ``inputs`` (n, C, H, W), run together with other callers' images;
        more than ``max_batch`` images go as several jobs. Raises what the network raised."""
        if inputs.ndim != 4 or len(inputs) == 0:
            raise ValueError(f"expected a non-empty batch (n, C, H, W); got shape {tuple(inputs.shape)}")
        jobs = [_Job(chunk) for chunk in torch.split(inputs, self.max_batch)]
        with self._closing:
            closed = self._closed.is_set()
            if not closed:
                for job in jobs:
                    self._jobs.put(job)
        if closed:  # evicted from the cache while this request held it: run alone
            return self._run(inputs)
        return np.concatenate([job.future.result() for job in jobs])

    def close(self) -> None:
        """Run what is queued, then stop the thread (later calls run alone, in the caller's thread)."""
        with self._closing:
            if not self._closed.is_set():
                self._closed.set()
                self._jobs.put(None)

    def _loop(self) -> None:
        carried: _Job | None = None
        while True:
            first = carried if carried is not None else self._jobs.get()
            carried = None
            if first is None:
                return
            batch, count, stopping = [first], len(first.inputs), False
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                if count + len(job.inputs) > self.max_batch:
                    carried = job  # first of the next batch: no job is split across model calls
                    break
                batch.append(job)
                count += len(job.inputs)
            self._run_batch(batch, count)
            if stopping:
                if carried is not None:
                    self._run_batch([carried], len(carried.inputs))
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._run_batch([job], len(job.inputs))

    def _run_batch(self, batch: list[_Job], count: int) -> None:
        inputs = batch[0].inputs if len(batch) == 1 else torch.cat([job.inputs for job in batch])
        try:
            rows = self._run(inputs)
        except BaseException as exc:  # every request of the batch learns why; the thread carries on
            log.exception("a batched model call of %d images failed", count)
            for job in batch:
                job.future.set_exception(exc)
            return
        stats = self.stats
        stats.model_calls += 1
        stats.requests += len(batch)
        stats.images += count
        stats.largest_batch = max(stats.largest_batch, count)
        start = 0
        for job in batch:
            end = start + len(job.inputs)
            job.future.set_result(rows[start:end])
            start = end
