"""Predictions from a trained version: the served models kept loaded, ONNX Runtime on the CPU, micro-batching.

How a version is served (:class:`PredictorCache`):

- **Backend**: a head model (classification, tagging) predicted on the CPU runs on ONNX Runtime, one
  session shared by every request. Its ONNX file is the version's ``onnx`` artifact (the worker exports
  and parity-checks it when training ends), used when it was made from the version's checkpoint; when
  there is none (the worker's export failed, or the version predates it), the first request exports it
  here, checked as ``export.py`` checks every export (on the version's own validation images), and
  stores it in the blob store as the version's ``onnx`` artifact, so every other API process serving
  this storage loads it instead of exporting again. A process exports a version once however many
  requests arrive together. The detector is served the same way (see ``DETECTOR_BACKEND``). PyTorch
  serves a GPU ``predict_device``, and any version whose export fails (the reason is logged; its
  predictions are the same within the export check's tolerance).
- **Micro-batching** (head models): each request decodes its images in its own thread (a request of
  many images on a pool of threads), then the model's :class:`~visiontrain.services.batching.MicroBatcher`
  runs the images of concurrent requests in one call of up to ``MAX_BATCH`` images. A file that is not
  a usable image fails its own request (400 naming it) before anything is batched.
- **Detection** runs each image alone (an image's boxes never depend on what was sent with it), in the
  request's thread (the route runs in the server's thread pool), so concurrent requests still run side by
  side without holding the event loop.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from visiontrain.blobs import BlobNotFound, BlobStore
from visiontrain.data.errors import ImageError
from visiontrain.services.batching import MAX_BATCH, MAX_WAIT_MS, MicroBatcher
from visiontrain.services.errors import BadFile, Conflict, InvalidInput
from visiontrain.store.base import Split, VersionStatus
from visiontrain.store.models import Artifact, ModelVersion

log = logging.getLogger(__name__)

MAX_IMAGES_PER_REQUEST = 64  # files in one predict request (the bytes are bounded by VISIONTRAIN_MAX_UPLOAD_MB)
ONNX_KIND = "onnx"
# The detector on the CPU, one image per call, raccoon photos, 2 cores: ONNX Runtime 14.2 images/s against
# PyTorch's 12.2 on a quiet machine (docs/benchmarks.md), and 2.1-4.2 against 0.25-0.5 in passes taken in
# turn on a machine loaded 5x over (PyTorch's threads suffer most from the contention).
DETECTOR_BACKEND: Literal["torch", "onnx"] = "onnx"
Backend = Literal["auto", "torch", "onnx"]
Sessions = Callable[[], AbstractContextManager[Any]]


def onnx_key(version_id: int) -> str:
    """Where a version's ONNX file lives in the blob store (the worker's key too)."""
    return f"versions/{version_id}/model.onnx"


@dataclass
class ServedModel:
    """A loaded predictor and how it is run."""

    predictor: Any  # visiontrain.predictor.Predictor (imported lazily: torch and the model code load on first use)
    batcher: MicroBatcher | None  # None: each request runs the network itself (detection, batching off)
    onnx_source: str | None = None  # "artifact" (found in the blob store) or "exported" (made here); None on PyTorch

    @property
    def backend_name(self) -> str:
        return self.predictor.backend_name

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


class PredictorCache:
    """The most recently used served models, keyed by checkpoint blob; safe to share between request threads.

    ``backend``: "auto" (ONNX Runtime for a head model on the CPU, PyTorch otherwise), "torch" or "onnx".
    ``batching``: gather concurrent requests' images into one model call (head models)."""

    def __init__(self, size: int = 4, *, device: str = "cpu", backend: Backend = "auto", batching: bool = True,
                 max_batch: int = MAX_BATCH, max_wait_ms: float = MAX_WAIT_MS):
        # The API process predicts on the CPU unless told otherwise (ServerConfig.predict_device): a
        # training worker on the same machine has the GPU.
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"unknown backend {backend!r}; choose auto, torch or onnx")
        self.size = size
        self.device = device
        self.backend = backend
        self.batching = batching
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.exports = 0  # ONNX exports this process made (first use of a version without one)
        self._items: OrderedDict[str, ServedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._decoders: ThreadPoolExecutor | None = None

    def get(self, *, blobs: BlobStore, checkpoint_key: str, version_id: int | None = None,
            onnx_artifact_key: str | None = None, sessions: Sessions | None = None) -> ServedModel:
        """The served model of a checkpoint, loaded on first use (one load per checkpoint however many
        requests arrive at once). ``onnx_artifact_key``: the version's ONNX artifact, if it has one;
        ``sessions``: database sessions, to read validation images for and record a first-use export
        (without them, a version with no ONNX artifact is served by PyTorch)."""
        with self._lock:
            if checkpoint_key in self._items:
                self._items.move_to_end(checkpoint_key)
                return self._items[checkpoint_key]
            loading = self._loading.setdefault(checkpoint_key, threading.Lock())
        with loading:
            with self._lock:
                if checkpoint_key in self._items:
                    return self._items[checkpoint_key]
            served = self._load(blobs, checkpoint_key, version_id, onnx_artifact_key, sessions)
            with self._lock:
                self._items[checkpoint_key] = served
                self._items.move_to_end(checkpoint_key)
                while len(self._items) > self.size:
                    _, evicted = self._items.popitem(last=False)
                    evicted.close()
                self._loading.pop(checkpoint_key, None)
        return served

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        with self._lock:
            for served in self._items.values():
                served.close()
            self._items.clear()
            if self._decoders is not None:
                self._decoders.shutdown(wait=False)
                self._decoders = None

    def decode_pool(self) -> ThreadPoolExecutor:
        """Threads that decode the images of a many-image request side by side (PIL and the resize release the GIL)."""
        from visiontrain.predictor import available_cpus

        with self._lock:
            if self._decoders is None:
                self._decoders = ThreadPoolExecutor(max_workers=max(2, available_cpus()), thread_name_prefix="decode")
            return self._decoders

    # --- loading

    def _wants_onnx(self, task: str) -> bool:
        from visiontrain.tasks import get_task

        if self.backend != "auto":
            return self.backend == "onnx"
        if self.device != "cpu":
            return False  # a GPU runs the PyTorch network
        return DETECTOR_BACKEND == "onnx" if get_task(task).model == "detector" else True

    def _load(self, blobs: BlobStore, checkpoint_key: str, version_id: int | None, onnx_artifact_key: str | None,
              sessions: Sessions | None) -> ServedModel:
        from visiontrain.models.checkpoint import load_checkpoint
        from visiontrain.predictor import Predictor

        checkpoint_path = blobs.local_path(checkpoint_key)
        loaded = load_checkpoint(checkpoint_path)
        predictor, source = None, None
        if self._wants_onnx(loaded.task):
            found = self._onnx_file(blobs, checkpoint_path, version_id, onnx_artifact_key, sessions)
            if found is not None:
                path, source = found
                predictor = Predictor.load(path, backend="onnx", device=self.device)
        if predictor is None:
            predictor = Predictor.load(loaded, device=self.device)
        batcher = None
        if self.batching and not predictor.detects:
            batcher = MicroBatcher(predictor.backend, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms,
                                   name=f"batcher-{version_id or checkpoint_key}")
        log.info("serving %s with %s%s", checkpoint_key, predictor.backend_name, " (micro-batched)" if batcher else "")
        return ServedModel(predictor=predictor, batcher=batcher, onnx_source=source)

    def _onnx_file(self, blobs: BlobStore, checkpoint_path: Path, version_id: int | None, onnx_artifact_key: str | None,
                   sessions: Sessions | None) -> tuple[Path, str] | None:
        """The version's ONNX file made from this checkpoint, exported and stored first if there is none;
        None when it cannot be had (then PyTorch serves)."""
        from visiontrain.export import made_from

        candidates = [onnx_artifact_key] if onnx_artifact_key else []
        if version_id is not None and onnx_key(version_id) not in candidates:
            candidates.append(onnx_key(version_id))  # stored by another process that has not recorded it yet
        for key in candidates:
            try:
                path = blobs.local_path(key)
            except BlobNotFound:
                continue
            if made_from(path, checkpoint_path):
                if key != onnx_artifact_key and sessions is not None and version_id is not None:
                    _record_onnx(sessions, blobs, version_id, key)
                return path, "artifact"
        if version_id is None or sessions is None:
            return None
        try:
            path = self._export(blobs, checkpoint_path, version_id, sessions)
        except Exception:  # the checkpoint still predicts (PyTorch); the log says why ONNX does not
            log.exception("version %d: exporting to ONNX for serving failed; PyTorch serves it", version_id)
            return None
        return path, "exported"

    def _export(self, blobs: BlobStore, checkpoint_path: Path, version_id: int, sessions: Sessions) -> Path:
        from visiontrain.export import CHECK_IMAGES, export_model

        check_images = _validation_images(sessions, blobs, version_id, CHECK_IMAGES)
        key = onnx_key(version_id)
        with tempfile.TemporaryDirectory(prefix="visiontrain-serve-export-") as scratch:
            result = export_model(checkpoint_path, Path(scratch) / "model.onnx", check_images=check_images or None)
            blobs.put_file(key, result.path)
        self.exports += 1
        log.info("version %d: exported to ONNX for serving (max difference %.2e on %s)", version_id,
                 result.max_difference, result.checked_on)
        _record_onnx(sessions, blobs, version_id, key)
        return blobs.local_path(key)


def _validation_images(sessions: Sessions, blobs: BlobStore, version_id: int, count: int) -> list[Path]:
    """Up to ``count`` of the version's own validation images (training images if it had none), as files."""
    from sqlalchemy import select

    from visiontrain.store.models import VersionSample

    with sessions() as session:
        keys = session.scalars(
            select(VersionSample.blob_key).where(VersionSample.version_id == version_id)
            .order_by((VersionSample.split == Split.val).desc(), VersionSample.id).limit(count)
        ).all()
    paths = []
    for key in keys:
        try:
            paths.append(blobs.local_path(key))
        except BlobNotFound:
            continue
    return paths


def _record_onnx(sessions: Sessions, blobs: BlobStore, version_id: int, key: str) -> None:
    """The stored ONNX file as the version's ``onnx`` artifact (downloadable, deleted with the version)."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    with sessions() as session:
        exists = select(Artifact.id).where(Artifact.version_id == version_id, Artifact.kind == ONNX_KIND)
        if session.scalar(exists) is not None:
            return
        session.add(Artifact(version_id=version_id, kind=ONNX_KIND, blob_key=key, size_bytes=blobs.size(key)))
        try:
            session.commit()
            return
        except IntegrityError:  # another API process recorded it first (the same key), or the version was deleted
            session.rollback()
        if session.get(ModelVersion, version_id) is None:
            blobs.delete(key)


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
    onnx: Artifact | None = None,
    sessions: Sessions | None = None,
) -> list[dict[str, Any]]:
    """The predictions for each uploaded image, in upload order (at most ``MAX_IMAGES_PER_REQUEST``). A file
    that is not a usable image makes the request a 400 naming it (all of them, when several). ``onnx``: the
    version's ONNX artifact; ``sessions``: to export and record one on first use when it has none."""
    require_ready(version, checkpoint)
    if not files:
        raise InvalidInput("no images were sent", loc=("body", "files"))
    if len(files) > MAX_IMAGES_PER_REQUEST:
        raise InvalidInput(f"at most {MAX_IMAGES_PER_REQUEST} images per request (got {len(files)}); send the rest "
                           "in further requests", loc=("body", "files"))
    for name, data in files:
        if not data:
            raise BadFile(name, "file is empty")
    served = cache.get(blobs=blobs, checkpoint_key=checkpoint.blob_key, version_id=version.id,  # type: ignore[union-attr]
                       onnx_artifact_key=onnx.blob_key if onnx is not None else None, sessions=sessions)
    if served.batcher is None:
        results = served.predictor.predict([data for _, data in files], top_k=top_k)
        _refuse_unreadable([(name, result.get("error")) for (name, _), result in zip(files, results, strict=True)])
    else:
        results = _predict_batched(served, cache, [data for _, data in files], [name for name, _ in files], top_k)
    # A detector's boxes are in the image's pixels: its size (EXIF rotation applied) comes with them.
    return [{"file": name, "predictions": result["predictions"], **{k: result[k] for k in ("width", "height") if k in result}}
            for (name, _), result in zip(files, results, strict=True)]


def _predict_batched(served: ServedModel, cache: PredictorCache, images: list[bytes], names: list[str],
                     top_k: int) -> list[dict[str, Any]]:
    predictor = served.predictor

    def decode(data: bytes) -> torch.Tensor | str:
        try:
            return predictor.decode(data)
        except ImageError as exc:
            return str(exc)

    decoded = [decode(images[0])] if len(images) == 1 else list(cache.decode_pool().map(decode, images))
    _refuse_unreadable([(name, item if isinstance(item, str) else None) for name, item in zip(names, decoded)])
    rows = served.batcher.predict(torch.stack(decoded))  # type: ignore[union-attr, arg-type]
    return [{"predictions": predictor.labelled(row, top_k)} for row in rows]


def _refuse_unreadable(outcomes: list[tuple[str, str | None]]) -> None:
    """The API refuses a request with unreadable images, naming each (the predictor reports them one by one)."""
    bad = [(name, error) for name, error in outcomes if error]
    if bad:
        raise BadFile(bad[0][0] if len(bad) == 1 else f"{len(bad)} of the files", "; ".join(
            reason if len(bad) == 1 else f"{name}: {reason}" for name, reason in bad
        ))
