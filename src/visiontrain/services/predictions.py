"""Predictions from a trained version, with a small cache of loaded models (loading takes ~a second)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from visiontrain.blobs import BlobStore
from visiontrain.services.errors import BadFile, Conflict, InvalidInput
from visiontrain.store.base import VersionStatus
from visiontrain.store.models import Artifact, ModelVersion

MAX_IMAGES_PER_REQUEST = 64


class PredictorCache:
    """The most recently used predictors, keyed by checkpoint blob; safe to share between request threads."""

    def __init__(self, size: int = 4, *, device: str = "cpu"):
        # The API process predicts on the CPU unless told otherwise (ServerConfig.predict_device): a
        # training worker on the same machine has the GPU.
        self.size = size
        self.device = device
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, *, blobs: BlobStore, checkpoint_key: str) -> Any:
        with self._lock:
            if checkpoint_key in self._items:
                self._items.move_to_end(checkpoint_key)
                return self._items[checkpoint_key]
            loading = self._loading.setdefault(checkpoint_key, threading.Lock())
        with loading:  # one load per checkpoint even when many requests arrive at once
            with self._lock:
                if checkpoint_key in self._items:
                    return self._items[checkpoint_key]
            from visiontrain.predictor import Predictor

            predictor = Predictor.load(blobs.local_path(checkpoint_key), device=self.device)
            with self._lock:
                self._items[checkpoint_key] = predictor
                self._items.move_to_end(checkpoint_key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._loading.pop(checkpoint_key, None)
        return predictor

    def __len__(self) -> int:
        return len(self._items)


def require_ready(version: ModelVersion, checkpoint: Artifact | None) -> None:
    """409 unless the version trained successfully and has its checkpoint."""
    if version.status != VersionStatus.succeeded or checkpoint is None:
        raise Conflict(f"version {version.id} is {version.status}; only a version that trained successfully can predict")


def predict(
    *,
    cache: PredictorCache,
    blobs: BlobStore,
    version: ModelVersion,
    checkpoint: Artifact | None,
    files: list[tuple[str, bytes]],
    top_k: int = 5,
) -> list[dict[str, Any]]:
    """Top-k labels with probabilities for each uploaded image, in upload order."""
    require_ready(version, checkpoint)
    if not files:
        raise InvalidInput("no images were sent", loc=("body", "files"))
    if len(files) > MAX_IMAGES_PER_REQUEST:
        raise InvalidInput(f"at most {MAX_IMAGES_PER_REQUEST} images per request (got {len(files)})", loc=("body", "files"))
    for name, data in files:
        if not data:
            raise BadFile(name, "file is empty")
    predictor = cache.get(blobs=blobs, checkpoint_key=checkpoint.blob_key)
    results = predictor.predict([data for _, data in files], top_k=top_k)
    # The predictor reports unreadable images one by one; the API refuses the request instead, naming them.
    bad = [(name, result["error"]) for (name, _), result in zip(files, results, strict=True) if result.get("error")]
    if bad:
        raise BadFile(bad[0][0] if len(bad) == 1 else f"{len(bad)} of the files", "; ".join(
            reason if len(bad) == 1 else f"{name}: {reason}" for name, reason in bad
        ))
    # A detector's boxes are in the image's pixels: its size (EXIF rotation applied) comes with them.
    return [{"file": name, "predictions": result["predictions"], **{k: result[k] for k in ("width", "height") if k in result}}
            for (name, _), result in zip(files, results, strict=True)]
