"""Turning the engine's events into stored metrics rows, in small batches (fewer writes, same order)."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from visiontrain.store.models import VersionMetric

FLUSH_SECONDS = 0.5


class MetricsWriter:
    """Buffers batch events for up to ``FLUSH_SECONDS``; epoch, stage and status events are written at once."""

    def __init__(self, sessions: sessionmaker[Session], version_id: int):
        self.sessions, self.version_id = sessions, version_id
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self.written = 0

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.append(event)
            urgent = event.get("type") not in ("batch", "features")
            if urgent or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

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
