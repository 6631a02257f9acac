"""Events a training run emits: to metrics.jsonl, to the progress display and to the caller's callback.

Every event is a JSON-ready dict with ``type`` and ``time`` (seconds since the run started):

- ``{"type": "stage", "stage": "data"|"features"|"lr_find"|"head"|"fine_tune"|"evaluation", "status": "started"|"finished"}``
- ``{"type": "features", "done": int, "total": int, "cache_hits": int, "originals": int, "augmented_copies": int,
  "train_images": int, "val_images": int, "elapsed_s": float, "eta_s": float | None}``  (feature extraction
  progress: total = originals + augmented copies; eta_s from the rate so far, None before the first computed batch)
- ``{"type": "lr_find", "learning_rate": float, "rule": str, "reason": str[, "fine_tune_learning_rate": float]}``
  (``learning_rate: auto``: the rate the range test chose, and the fine-tuning rate when it had to be capped)
- ``{"type": "fine_tune_inputs", "done": int, "total": int, "elapsed_s": float}``  (fine-tuning's inputs: each image
  decoded once, the backbone's frozen front run once per input that does not change)
- ``{"type": "batch", "stage": "head"|"fine_tune", "epoch": int, "step": int, "loss": float, "learning_rate": float}``
- ``{"type": "epoch", "stage": ..., "epoch": int, "train_loss": float, "val_loss": float,
     <each validation metric of the task>: float, "monitor": str, "learning_rate": float, "best": bool}``
  (classification: ``val_accuracy``; tagging: ``val_map``, ``val_accuracy``, ``val_exact_match``;
  ``monitor`` names the one the best checkpoint follows, ``best`` says whether this epoch is it)
- ``{"type": "status", "status": "succeeded"|"cancelled"|"failed", "message": str}`` (last event)

``epoch`` counts from 1 within a stage; ``step`` counts batches over the whole run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

METRICS_FILE = "metrics.jsonl"


class EventSink:
    """Writes each event to metrics.jsonl (flushed, so readers see it at once) and forwards it."""

    def __init__(self, run_dir: Path, callback: Callable[[dict[str, Any]], None] | None = None):
        self.start = time.monotonic()
        self.callback = callback
        self._file: TextIO = open(run_dir / METRICS_FILE, "w", encoding="utf-8")
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "time": round(time.monotonic() - self.start, 3), **fields}
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()
        for listener in self.listeners:
            listener(event)
        if self.callback is not None:
            self.callback(event)
        return event

    def close(self) -> None:
        self._file.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                break
    return events
