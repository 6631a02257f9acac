"""Turning the engine's events into stored metrics rows, in small batches (fewer writes, same order).

A database error while storing them never reaches the engine (it would abort the training): the
rows stay in the buffer and are written with the next ones, after ``RETRY_SECONDS``. The buffer is
bounded: in a long outage the oldest batch events go first (epoch, stage and status events are kept).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from visiontrain.store.models import VersionMetric

log = logging.getLogger("visiontrain.worker")

FLUSH_SECONDS = 0.5
RETRY_SECONDS = 2.0
MAX_BUFFERED = 20_000
DROPPABLE = ("batch", "features")


class MetricsWriter:
    """Buffers batch events for up to ``FLUSH_SECONDS``; epoch, stage and status events are written at once."""

    def __init__(self, sessions: sessionmaker[Session], version_id: int):
        self.sessions, self.version_id = sessions, version_id
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self.written = 0
        self.failures = 0
        self.dropped = 0

    def __call__(self, event: dict[str, Any]) -> None:
        """The engine's callback: never raises for a database problem."""
        with self._lock:
            self._buffer.append(event)
            now = time.monotonic()
            if now < self._retry_at:
                self._bound()
                return
            urgent = event.get("type") not in DROPPABLE
            if urgent or now - self._last_flush >= FLUSH_SECONDS:
                try:
                    self._flush_locked()
                except Exception as exc:  # the database is briefly unreachable: keep the rows, try again later
                    self.failures += 1
                    self._retry_at = time.monotonic() + RETRY_SECONDS
                    self._bound()
                    log.warning(
                        "version %d: could not store %d metrics rows (%s: %s); retrying in %.0f s",
                        self.version_id, len(self._buffer), type(exc).__name__, exc, RETRY_SECONDS,
                    )

    def flush(self, *, attempts: int = 1, wait_seconds: float = RETRY_SECONDS) -> None:
        """Write what is buffered; raises the last error when every attempt failed (the rows stay buffered)."""
        with self._lock:
            for attempt in range(attempts):
                try:
                    self._flush_locked()
                    self._retry_at = 0.0
                    return
                except Exception:
                    self.failures += 1
                    if attempt == attempts - 1:
                        raise
                    time.sleep(wait_seconds)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _bound(self) -> None:
        excess = len(self._buffer) - MAX_BUFFERED
        if excess <= 0:
            return
        kept: list[dict[str, Any]] = []
        for event in self._buffer:
            if excess > 0 and event.get("type") in DROPPABLE:
                excess -= 1
                self.dropped += 1
                continue
            kept.append(event)
        self._buffer = kept

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        rows = [
            VersionMetric(
                version_id=self.version_id,
                kind=str(event.get("type", "event")),
                stage=event.get("stage"),
                epoch=event.get("epoch"),
                step=event.get("step"),
                time=float(event.get("time", 0.0)),
                data=event,
            )
            for event in self._buffer
        ]
        with self.sessions() as session:
            session.add_all(rows)
            session.commit()
        self.written += len(rows)
        self._buffer.clear()
