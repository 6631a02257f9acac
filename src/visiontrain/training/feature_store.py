"""Where backbone vectors live: an LMDB store per feature space on this machine, capped in size, with an
optional shared tier in the object store in front of the backbone.

Local tier: one LMDB environment per feature space, ``<root>/<space key>/lmdb/`` (two files whatever
the number of vectors). Lookups and writes go in batches, one transaction each; LMDB's locks let
several processes on one machine (workers, DDP ranks) read and write the same store at once, and a
transaction that does not commit (a killed writer) leaves nothing behind: a vector is readable whole
or not at all. The memory map grows as the store does.

Size cap: a byte budget (default 20 GB; ``VISIONTRAIN_FEATURE_CACHE_GB``, or the size given to
:class:`FeatureCacheLocation`). Each entry carries a coarse last-used stamp: the time its current user
opened the cache, written at most once per opened cache and in batches (with the next write, every
1024 lookups, or when the cache is dropped: each write transaction costs a disk sync). A write that
would pass the cap first evicts the least recently used entries down to 90% of it, in the same
transaction; what the current cache has read or written is never evicted (if that alone is over the
cap the store goes over it, with a warning).

Shared tier (:class:`FeatureCacheLocation` ``shared``): a :class:`~visiontrain.blobs.BlobStore` that the
machines of a cluster share. A local miss is looked up there (many requests at once, from a thread
pool; when the first 256 misses of a lookup are all missing there too, the rest are not asked) and
kept locally; a computed vector is written to both, so a cluster computes each image's features once. Objects are content-addressed and immutable, one per (image, variant):
``features/<space key>/<image hash[:2]>/<image hash>-<variant>``: no two writers ever need to agree on
an object's contents, so there is no read-modify-write and no index to keep consistent; the object
store holds any number of keys, and each machine fetches an object at most once (its local tier keeps
it). The shared tier has no cap: an object-store lifecycle rule on ``features/`` expires it.

Caches of earlier versions (one ``.npy`` file per vector under ``<root>/<space key>/<hh>/``) are not
read: their vectors are computed again on first use; the old folders can be deleted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlparse

import lmdb
import numpy as np

from visiontrain.blobs import BlobNotFound, BlobStore
from visiontrain.settings import SettingsError

if TYPE_CHECKING:
    from visiontrain.training.features import FeatureSpace

log = logging.getLogger("visiontrain.features")

CACHE_GB_ENV = "VISIONTRAIN_FEATURE_CACHE_GB"
DEFAULT_CACHE_GB = 20.0
EVICT_DOWN_TO = 0.9  # of the cap: an eviction frees room for many writes, not one
INITIAL_MAP_BYTES = 256 << 20  # the map doubles when full; on 64-bit systems unused map costs nothing
TRANSACTION_KEYS = 1024  # lookups per read transaction: a long-lived reader keeps writers from reusing pages
RESTAMP_BATCH = 1024  # last-used stamps written together: each write transaction costs a disk sync
SHARED_PREFIX = "features"
SHARED_PROBE = 256  # shared-tier lookups asked before giving up on a batch of misses it holds none of
SHARED_REQUESTS = 10  # shared-tier requests in flight at once (botocore keeps 10 connections per client)


def default_cache_dir() -> Path:
    configured = os.environ.get("VISIONTRAIN_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("visiontrain")) / "features"


def cache_size_bytes(size_gb: float | str | None = None) -> int:
    """The cap in bytes: ``size_gb``, else $VISIONTRAIN_FEATURE_CACHE_GB, else 20 GB."""
    source = "the feature cache size"
    if size_gb is None:
        size_gb, source = os.environ.get(CACHE_GB_ENV) or DEFAULT_CACHE_GB, CACHE_GB_ENV
    try:
        gigabytes = float(size_gb)
    except (TypeError, ValueError):
        gigabytes = math.nan
    if not math.isfinite(gigabytes) or gigabytes <= 0:
        raise SettingsError(f"{source} must be a number of gigabytes above 0, such as 20 or 0.5 (got {size_gb!r})")
    return int(gigabytes * 1e9)


@dataclass(frozen=True)
class FeatureCacheLocation:
    """Where a run's features are kept: a directory on this machine, its size cap in bytes, and an optional
    shared tier (a blob store the machines of a cluster share)."""

    root: Path
    max_bytes: int
    shared: BlobStore | None = None

    @classmethod
    def resolve(cls, where: "str | Path | FeatureCacheLocation | None" = None, *, size_gb: float | None = None,
                shared: BlobStore | None = None) -> "FeatureCacheLocation":
        """A location from a directory (default: the user cache directory, or $VISIONTRAIN_CACHE_DIR) or an
        existing location, with ``size_gb`` and ``shared`` replacing what it had when given."""
        if isinstance(where, FeatureCacheLocation):
            location = where if size_gb is None else replace(where, max_bytes=cache_size_bytes(size_gb))
            return location if shared is None else replace(location, shared=shared)
        return cls(Path(where) if where else default_cache_dir(), cache_size_bytes(size_gb), shared)

    def __reduce__(self) -> tuple:
        # Another process (a data-parallel rank) opens the shared tier again from its URL: a store's
        # network client need not survive pickling.
        return _location_from_url, (self.root, self.max_bytes, None if self.shared is None else self.shared.url)


def _location_from_url(root: Path, max_bytes: int, shared_url: str | None) -> FeatureCacheLocation:
    from visiontrain.blobs import open_blob_store

    return FeatureCacheLocation(root, max_bytes, None if shared_url is None else open_blob_store(shared_url))


def shared_tier(blobs: BlobStore) -> BlobStore | None:
    """The platform's blob store as the feature cache's shared tier when other machines share it (an object
    store); a ``file://`` store is taken to be this machine's disk, where a second copy of every vector would
    only double the local cache."""
    return None if urlparse(blobs.url).scheme in ("", "file") else blobs


# --- one vector as bytes: a small header (magic, dtype, shape), then the numbers

_MAGIC = b"vf1"
_DTYPES = [np.dtype("<f4"), np.dtype("<f2"), np.dtype("<f8")]


def encode_vector(vector: np.ndarray) -> bytes:
    array = np.ascontiguousarray(vector)
    if array.dtype not in _DTYPES:
        array = array.astype("<f4")
    code = _DTYPES.index(array.dtype)
    return struct.pack(f"<3sBB{array.ndim}I", _MAGIC, code, array.ndim, *array.shape) + array.tobytes()


def decode_vector(data: bytes) -> np.ndarray | None:
    """The vector, or None for bytes that are not one whole vector."""
    if len(data) < 5 or data[:3] != _MAGIC or data[3] >= len(_DTYPES):
        return None
    dtype, ndim = _DTYPES[data[3]], data[4]
    offset = 5 + 4 * ndim
    if len(data) < offset:
        return None
    shape = struct.unpack_from(f"<{ndim}I", data, 5)
    count = math.prod(shape)
    if len(data) != offset + count * dtype.itemsize:
        return None
    return np.frombuffer(data, dtype, count, offset).reshape(shape).copy()


# --- the local tier

_USED = struct.Struct("<QQ")  # last-used stamp (seconds), bytes the entry takes
_TOTAL_KEY = b"bytes"
T = TypeVar("T")


class _Environment:
    """An LMDB environment opened once per process: LMDB forbids opening one twice in a process (closing
    the second copy would drop the first's locks), so every store of a path shares this one."""

    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        self.path, self.pid = path, os.getpid()
        # metasync off: a system crash may lose the last commit but never leaves the store inconsistent.
        self.env = lmdb.open(str(path), map_size=INITIAL_MAP_BYTES, max_dbs=3, metasync=False, readahead=False)
        self.env.reader_check()  # slots of readers that were killed
        self.vectors = self.env.open_db(b"vectors")
        self.used = self.env.open_db(b"used")
        self.meta = self.env.open_db(b"meta")
        self.page_size = self.env.stat()["psize"]
        self.file_id = _file_id(path / "data.mdb")
        # Transactions of this process one at a time: the map may only be resized with none open.
        self.lock = threading.RLock()

    def run(self, work: Callable[[lmdb.Transaction], T], *, write: bool) -> T:
        """``work`` in one transaction, committed if it returns; on a full map the map grows and it runs again."""
        with self.lock:
            while True:
                try:
                    txn = self.env.begin(write=write)
                except lmdb.MapResizedError:  # another process grew the map: adopt its size
                    self.env.set_mapsize(0)
                    continue
                try:
                    result = work(txn)
                    txn.commit()  # a commit may need pages too
                    return result
                except lmdb.MapFullError:
                    txn.abort()  # nothing once the commit has failed
                    self.env.set_mapsize(self.env.info()["map_size"] * 2)
                except BaseException:
                    txn.abort()
                    raise


_clock = time.time  # last-used stamps: seconds; tests set their own clock
_environments: dict[Path, _Environment] = {}
_environments_lock = threading.Lock()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _environment(path: Path) -> _Environment:
    path = path.resolve()
    with _environments_lock:
        env = _environments.get(path)
        # A forked child must not use its parent's handle; a store deleted (and maybe made again by another
        # process) since it was opened is another store.
        if env is None or env.pid != os.getpid() or env.file_id != _file_id(path / "data.mdb"):
            env = _environments[path] = _Environment(path)
        return env


class LocalFeatureStore:
    """Encoded vectors by key in one LMDB environment, capped at ``max_bytes`` (least recently used evicted)."""

    def __init__(self, path: Path, max_bytes: int):
        self._env = _environment(Path(path))
        self.max_bytes = max_bytes
        # Entries stamped with this (or later) were used by a cache that is open now: never evicted by this one.
        self.stamp = int(_clock())
        self._futile_until = 0  # above the cap, the total at which an eviction is worth another scan
        self._warned_over_cap = False
        # Keys read whose stamps are older than this store's: written with the next write, every RESTAMP_BATCH
        # reads, or when the store is dropped (the stamps only order evictions; losing some costs nothing else).
        self._stale: list[bytes] = []
        weakref.finalize(self, _write_stamps, self._env, self._stale, self.stamp)

    def footprint(self, key: bytes, value: bytes) -> int:
        """Bytes an entry takes as LMDB lays it out (estimated): a value over about half a page goes on whole
        overflow pages of its own; the key is stored twice (vector, last-used stamp)."""
        page = self._env.page_size
        value_bytes = len(value)
        if len(key) + len(value) + 8 > (page - 16) // 2:
            value_bytes = math.ceil((len(value) + 16) / page) * page + 8
        return value_bytes + 2 * (len(key) + 8) + _USED.size

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        found: list[bytes | None] = []
        for start in range(0, len(keys), TRANSACTION_KEYS):
            chunk = keys[start:start + TRANSACTION_KEYS]
            values, stale = self._env.run(lambda txn: self._read(txn, chunk), write=False)
            found += values
            self._stale += stale
            if len(self._stale) >= RESTAMP_BATCH:
                self.flush()
        return found

    def flush(self) -> None:
        """Write the last-used stamps of what this store has read."""
        _write_stamps(self._env, self._stale, self.stamp)

    def _read(self, txn: lmdb.Transaction, keys: Sequence[bytes]) -> tuple[list[bytes | None], list[bytes]]:
        env, values, stale = self._env, [], []
        for key in keys:
            value = txn.get(key, db=env.vectors)
            values.append(value)
            if value is not None:
                used = txn.get(key, db=env.used)
                if used is not None and _USED.unpack(used)[0] < self.stamp:
                    stale.append(key)
        return values, stale

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> int:
        """Store each (key, encoded vector) in one transaction; returns how many older entries were evicted."""
        if not items:
            return 0
        sizes = [self.footprint(key, value) for key, value in items]
        evicted = self._env.run(lambda txn: self._write(txn, items, sizes), write=True)
        self._stale.clear()  # written in the same transaction
        return evicted

    def _write(self, txn: lmdb.Transaction, items: Sequence[tuple[bytes, bytes]], sizes: Sequence[int]) -> int:
        env = self._env
        _restamp(txn, env, self._stale, self.stamp)  # before an eviction looks at the stamps
        total = self._total(txn)
        for (key, value), size in zip(items, sizes):
            previous = txn.get(key, db=env.used)
            if previous is not None:
                total -= _USED.unpack(previous)[1]
            txn.put(key, value, db=env.vectors)
            txn.put(key, _USED.pack(self.stamp, size), db=env.used)
            total += size
        evicted = 0
        if total > max(self.max_bytes, self._futile_until):
            total, evicted = self._evict(txn, total)
            if total > self.max_bytes:
                # Only this run's entries are left to evict: scan again once 10% of the cap more is written,
                # not on every write (each scan reads every entry's stamp).
                self._futile_until = total + int(self.max_bytes * (1 - EVICT_DOWN_TO))
        self._record_total(txn, total)
        return evicted

    def _evict(self, txn: lmdb.Transaction, total: int) -> tuple[int, int]:
        """Delete the least recently used entries until ``total`` is at 90% of the cap; entries stamped by a
        cache opened since this one are kept. Returns the new total and how many went."""
        env, target = self._env, int(self.max_bytes * EVICT_DOWN_TO)
        candidates = []
        for key, used in txn.cursor(db=env.used):
            stamp, size = _USED.unpack(used)
            if stamp < self.stamp:
                candidates.append((stamp, key, size))
        candidates.sort()
        evicted = 0
        for _, key, size in candidates:
            if total <= target:
                break
            txn.delete(key, db=env.vectors)
            txn.delete(key, db=env.used)
            total -= size
            evicted += 1
        if total > self.max_bytes and not self._warned_over_cap:
            self._warned_over_cap = True
            log.warning("the feature cache at %s holds %.3g GB, above its %.3g GB cap: this run's features alone need more; "
                        "raise %s (or the cache size) to keep them all", env.path, total / 1e9, self.max_bytes / 1e9,
                        CACHE_GB_ENV)
        return total, evicted

    def _total(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(_TOTAL_KEY, db=self._env.meta)
        return struct.unpack("<Q", raw)[0] if raw else 0

    def _record_total(self, txn: lmdb.Transaction, total: int) -> None:
        txn.put(_TOTAL_KEY, struct.pack("<Q", max(total, 0)), db=self._env.meta)

    def stats(self) -> dict[str, int]:
        """entries, bytes (as counted against the cap), max_bytes, file_bytes (what the files take on disk)."""
        def read(txn: lmdb.Transaction) -> tuple[int, int]:
            return txn.stat(self._env.vectors)["entries"], self._total(txn)

        entries, total = self._env.run(read, write=False)
        on_disk = sum(p.stat().st_blocks * 512 for p in self._env.path.iterdir() if p.is_file())
        return {"entries": entries, "bytes": total, "max_bytes": self.max_bytes, "file_bytes": on_disk}


def _restamp(txn: lmdb.Transaction, env: _Environment, keys: Sequence[bytes], stamp: int) -> None:
    for key in keys:
        used = txn.get(key, db=env.used)
        if used is not None:  # else evicted by another process since it was read
            txn.put(key, _USED.pack(stamp, _USED.unpack(used)[1]), db=env.used)


def _write_stamps(env: _Environment, keys: list[bytes], stamp: int) -> None:
    if keys and env.pid == os.getpid():  # a forked child leaves its parent's handle alone
        env.run(lambda txn: _restamp(txn, env, keys, stamp), write=True)
        keys.clear()


# --- the two tiers together

_shared_pool: ThreadPoolExecutor | None = None
_shared_pool_lock = threading.Lock()


def _shared_requests() -> ThreadPoolExecutor:
    global _shared_pool
    with _shared_pool_lock:
        if _shared_pool is None:
            _shared_pool = ThreadPoolExecutor(max_workers=SHARED_REQUESTS, thread_name_prefix="visiontrain-shared-features")
        return _shared_pool


class FeatureCache:
    """Feature vectors by (image hash, variant) for one feature space: the local LMDB store, then the shared
    tier when the location has one. ``dir`` (``<root>/<space key>``) also keeps the backbone's ONNX exports."""

    def __init__(self, root: "str | Path | FeatureCacheLocation", space: "FeatureSpace"):
        location = FeatureCacheLocation.resolve(root)
        self.space_key = space.key()
        self.dir = Path(location.root) / self.space_key
        self.dir.mkdir(parents=True, exist_ok=True)
        self.description = {"backbone": space.backbone, "weights": space.weights, **space.preprocessing.to_dict()}
        meta = self.dir / "space.json"
        if not meta.exists():
            meta.write_text(json.dumps(self.description))
        self.local = LocalFeatureStore(self.dir / "lmdb", location.max_bytes)
        self.shared = location.shared
        self.shared_hits = 0  # vectors this cache read from the shared tier (not computed, not local)
        self._shared_space_written = False
        self._warned_shared = False

    @staticmethod
    def local_key(image_hash: str, variant: str) -> bytes:
        return f"{image_hash}/{variant}".encode()

    def shared_key(self, image_hash: str, variant: str) -> str:
        return f"{SHARED_PREFIX}/{self.space_key}/{image_hash[:2]}/{image_hash}-{variant}"

    def get(self, image_hash: str, variant: str) -> np.ndarray | None:
        return self.get_many([(image_hash, variant)])[0]

    def put(self, image_hash: str, variant: str, vector: np.ndarray) -> None:
        self.put_many([(image_hash, variant, vector)])

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[np.ndarray | None]:
        """The vector of each (image hash, variant), None where neither tier has it."""
        raw = self.local.get_many([self.local_key(h, v) for h, v in keys])
        vectors = [None if value is None else decode_vector(value) for value in raw]
        missing = [i for i, vector in enumerate(vectors) if vector is None]
        if self.shared is not None and missing:
            fetched = self._fetch_shared([keys[i] for i in missing])
            kept = []
            for index, data in zip(missing, fetched):
                vector = None if data is None else decode_vector(data)
                if vector is not None:
                    vectors[index] = vector
                    kept.append((self.local_key(*keys[index]), data))
            self.shared_hits += len(kept)
            for start in range(0, len(kept), TRANSACTION_KEYS):
                self.local.put_many(kept[start:start + TRANSACTION_KEYS])
        return vectors

    def put_many(self, items: Sequence[tuple[str, str, np.ndarray]]) -> None:
        """Store each (image hash, variant, vector): locally in one transaction, then in the shared tier."""
        encoded = [(image_hash, variant, encode_vector(vector)) for image_hash, variant, vector in items]
        self.local.put_many([(self.local_key(h, v), data) for h, v, data in encoded])
        if self.shared is not None and encoded:
            self._store_shared(encoded)

    def stats(self) -> dict[str, int]:
        return self.local.stats()

    # --- the shared tier: failures cost a recomputation, never the run

    def _fetch_shared(self, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
        shared = self.shared
        assert shared is not None

        def fetch(key: tuple[str, str]) -> bytes | None:
            try:
                return shared.get_bytes(self.shared_key(*key))
            except BlobNotFound:
                return None
            except Exception as exc:  # unreachable store, denied request: compute instead
                self._warn_shared("read from", exc)
                return None

        # A first run of a dataset finds nothing there: after SHARED_PROBE misses in a row with nothing found,
        # the rest are computed without asking (a million 404s would cost minutes).
        found: list[bytes | None] = []
        for start in range(0, len(keys), SHARED_PROBE):
            found += _shared_requests().map(fetch, keys[start:start + SHARED_PROBE])
            if not any(found):
                return found + [None] * (len(keys) - len(found))
        return found

    def _store_shared(self, encoded: Sequence[tuple[str, str, bytes]]) -> None:
        shared = self.shared
        assert shared is not None
        uploads = [(self.shared_key(image_hash, variant), data) for image_hash, variant, data in encoded]
        if not self._shared_space_written:  # what the space key stands for, for whoever browses the store
            self._shared_space_written = True
            uploads.append((f"{SHARED_PREFIX}/{self.space_key}/space.json", json.dumps(self.description).encode()))

        def store(upload: tuple[str, bytes]) -> None:
            try:
                shared.put_bytes(*upload)
            except Exception as exc:
                self._warn_shared("write to", exc)

        list(_shared_requests().map(store, uploads))

    def _warn_shared(self, action: str, exc: Exception) -> None:
        if not self._warned_shared:
            self._warned_shared = True
            log.warning("could not %s the shared feature store %s (%s: %s); features are computed here instead",
                        action, getattr(self.shared, "url", "?"), type(exc).__name__, exc)
