"""The feature store against the one it replaces, on a synthetic index of 200,000 vectors.

    python benchmarks/feature_store.py [--vectors 200000] [--dim 1280] [--lookups 20000] [--shared-url s3://bucket/prefix]
                                       [--markdown out.md]

Both stores get the same vectors (random float32 of the default backbone's dimension, EfficientNet-Lite0's
1280; keys as extraction makes them: an image's sha256 with ``orig`` or ``aug1-<key>``, two variants per
image), written as ``extract_features`` stores them:

* **before**: one ``.npy`` file per vector, ``<space>/<hash[:2]>/<hash>-<variant>.npy``, each written to a
  temporary file and renamed (the previous ``FeatureCache``, re-created below as it was);
* **after**: ``FeatureCache`` of ``visiontrain.training.feature_store``: one LMDB environment, one
  transaction (one disk sync) per 256 vectors; also measured at 32 per transaction, on ``--lookups`` vectors
  into a store of their own.

Lookups are random batches of 32 and of 256 keys (``--lookups`` vectors per case): *warm* right after
the writes (the files in the OS page cache), *cold* after the stores' files are dropped from the page
cache (``posix_fadvise(DONTNEED)`` on every file; needs no root) and the store opened again as a new run
would (so the new store's first lookups also write their last-used stamps). Then the files each store
uses and the bytes they take on disk, and for the new store the eviction a write triggers at a cap of
80% of what it holds (evicting down to 90% of the cap), and what deleting each store takes. With ``--shared-url`` (or a local directory by
default), the shared tier: a second machine's lookups of vectors another one wrote there.

The machine may be shared: the rates are wall-clock and fall with other load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

STORE_BATCH = 256  # what extract_features stores at once (features.STORE_BATCH)


class NpyFeatureCache:
    """The store before: one ``.npy`` file per vector (visiontrain's ``FeatureCache`` until the LMDB store)."""

    def __init__(self, root: Path, space_key: str):
        self.dir = Path(root) / space_key
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, image_hash: str, variant: str) -> Path:
        return self.dir / image_hash[:2] / f"{image_hash}-{variant}.npy"

    def get(self, image_hash: str, variant: str) -> np.ndarray | None:
        try:
            return np.load(self.path(image_hash, variant), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, image_hash: str, variant: str, vector: np.ndarray) -> None:
        path = self.path(image_hash, variant)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vector, allow_pickle=False)
        tmp.replace(path)


class _Space:
    """What FeatureCache needs of a feature space, without building a backbone."""

    backbone, weights = "efficientnet_lite0", "synthetic"

    class preprocessing:  # noqa: N801 - stands in for a Preprocessing
        @staticmethod
        def to_dict() -> dict:
            return {"image_size": 224}

    @staticmethod
    def key() -> str:
        return "benchmark-space"


def _keys(count: int) -> list[tuple[str, str]]:
    images = (count + 1) // 2
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(images)]
    return [(h, v) for h in hashes for v in ("orig", "aug1-0123456789abcdef")][:count]


def _files_and_bytes(root: Path) -> tuple[int, int]:
    files = blocks = 0
    for path in root.rglob("*"):
        if path.is_file():
            files += 1
            blocks += path.stat().st_blocks
    return files, blocks * 512


def _drop_from_page_cache(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--lookups", type=int, default=20_000, help="Vectors looked up per lookup case.")
    parser.add_argument("--shared-lookups", type=int, default=5_000, help="Vectors a second machine reads from the shared tier.")
    parser.add_argument("--shared-url", default=None, help="Blob store URL for the shared tier (default: a local directory).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the table as Markdown here.")
    args = parser.parse_args()

    from visiontrain.blobs import open_blob_store
    from visiontrain.training.feature_store import FeatureCache, FeatureCacheLocation

    work = Path(tempfile.mkdtemp(prefix="vt-feature-store-bench-"))
    rng = np.random.default_rng(args.seed)
    keys = _keys(args.vectors)
    vectors = rng.random((len(keys), args.dim), dtype=np.float32)
    rows: list[tuple[str, str, str, str]] = []  # (measure, before, after, after / before)

    def row(measure: str, before: float | None, after: float, unit: str = "", higher_is_better: bool = True) -> None:
        shown_before = "—" if before is None else f"{before:,.0f}{unit}"
        if not before:
            ratio = ""
        elif higher_is_better or after >= before:
            ratio = f"{after / before:.2f}x"
        else:
            ratio = f"1/{before / after:,.0f}"
        rows.append((measure, shown_before, f"{after:,.0f}{unit}", ratio))
        print(f"{measure:<44} {shown_before:>16} {after:>16,.0f}{unit} {ratio:>8}", flush=True)

    try:
        print(f"{len(keys):,} vectors of {args.dim} float32 in {work}\n", flush=True)
        print(f"{'':<44} {'before (.npy)':>16} {'after (LMDB)':>16} {'ratio':>8}")
        old = NpyFeatureCache(work / "npy", _Space.key())
        location = FeatureCacheLocation(work / "lmdb", max_bytes=10**12)
        new = FeatureCache(location, _Space())

        started = time.perf_counter()
        for (image_hash, variant), vector in zip(keys, vectors):
            old.put(image_hash, variant, vector)
        old_write = _rate(len(keys), time.perf_counter() - started)

        def write(cache: FeatureCache, count: int, batch: int) -> float:
            started = time.perf_counter()
            for start in range(0, count, batch):
                cache.put_many([(h, v, vector) for (h, v), vector in zip(keys[start:start + batch], vectors[start:start + batch])])
            return _rate(count, time.perf_counter() - started)

        row(f"writes/s ({STORE_BATCH} per transaction)", old_write, write(new, len(keys), STORE_BATCH))
        small = FeatureCache(FeatureCacheLocation(work / "lmdb-32", max_bytes=10**12), _Space())
        row("writes/s (32 per transaction)", old_write, write(small, min(args.lookups, len(keys)), 32))
        shutil.rmtree(work / "lmdb-32")

        def lookups(store_get, batch: int, label: str) -> float:
            picks = rng.integers(0, len(keys), size=(max(1, args.lookups // batch), batch))
            started = time.perf_counter()
            for chosen in picks:
                found = store_get([keys[i] for i in chosen])
                if any(f is None for f in found):
                    raise AssertionError(f"{label}: a stored vector was not found")
            seconds = time.perf_counter() - started
            check = picks[0][0]
            if not np.array_equal(store_get([keys[check]])[0], vectors[check]):
                raise AssertionError(f"{label}: a vector came back different")
            return _rate(picks.size, seconds)

        def old_get(batch_keys):
            return [old.get(h, v) for h, v in batch_keys]

        for batch in (32, 256):
            row(f"lookups/s warm, batches of {batch}", lookups(old_get, batch, "npy"), lookups(new.get_many, batch, "lmdb"))
        for batch in (32, 256):
            _drop_from_page_cache(work / "npy")
            before = lookups(old_get, batch, "npy")
            _drop_from_page_cache(work / "lmdb")
            new = FeatureCache(location, _Space())  # a new run: its first lookups stamp the entries they read
            row(f"lookups/s cold, batches of {batch}", before, lookups(new.get_many, batch, "lmdb"))

        old_files, old_bytes = _files_and_bytes(work / "npy")
        new_files, new_bytes = _files_and_bytes(work / "lmdb")
        row("files used", old_files, new_files, higher_is_better=False)
        row("MB on disk", old_bytes / 1e6, new_bytes / 1e6, higher_is_better=False)

        # Eviction: a cap below what the store holds; the next run's first write evicts down to 90% of it.
        held = new.stats()["bytes"]
        capped = FeatureCache(FeatureCacheLocation(work / "lmdb", max_bytes=int(held * 0.8)), _Space())
        extra = rng.random((STORE_BATCH, args.dim), dtype=np.float32)
        started = time.perf_counter()
        capped.put_many([(f"{i:064x}", "orig", vector) for i, vector in enumerate(extra)])
        evict_seconds = time.perf_counter() - started
        after = capped.stats()
        evicted = len(keys) + STORE_BATCH - after["entries"]
        row(f"eviction at a cap of 80%: ms (vectors evicted: {evicted:,})", None, evict_seconds * 1e3)
        print(f"  store after eviction: {after['entries']:,} vectors, {after['bytes'] / 1e6:,.0f} MB counted against a "
              f"{after['max_bytes'] / 1e6:,.0f} MB cap, {after['file_bytes'] / 1e6:,.0f} MB of files (LMDB reuses freed pages)")

        # Clean-up: what deleting each store takes (the old one has no cap, so this was its only clean-up).
        started = time.perf_counter()
        shutil.rmtree(work / "npy")
        old_delete = time.perf_counter() - started
        del new, capped
        started = time.perf_counter()
        shutil.rmtree(work / "lmdb")
        row("ms to delete the store", old_delete * 1e3, (time.perf_counter() - started) * 1e3, higher_is_better=False)

        # The shared tier: machine A writes a slice of the vectors there, machine B reads them.
        shared = open_blob_store(args.shared_url or (work / "object-store").as_uri(), cache_dir=work / "blob-cache")
        part = keys[: args.shared_lookups]
        writer = FeatureCache(FeatureCacheLocation(work / "machine-a", 10**12, shared), _Space())
        started = time.perf_counter()
        for start in range(0, len(part), 256):
            writer.put_many([(h, v, vectors[start + j]) for j, (h, v) in enumerate(part[start:start + 256])])
        shared_write = time.perf_counter() - started
        reader = FeatureCache(FeatureCacheLocation(work / "machine-b", 10**12, shared), _Space())
        started = time.perf_counter()
        for start in range(0, len(part), 256):
            found = reader.get_many(part[start:start + 256])
            if any(f is None for f in found):
                raise AssertionError("shared tier: a vector another machine wrote was not found")
        shared_read = time.perf_counter() - started
        where = "S3" if shared.url.startswith("s3:") else "a local directory"
        row(f"shared tier ({where}): writes/s, both tiers", None, _rate(len(part), shared_write))
        row(f"shared tier ({where}): second machine lookups/s", None, _rate(len(part), shared_read))
        if args.shared_url:
            shared.delete_prefix(f"features/{_Space.key()}/")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.markdown:
        lines = ["| measure | before (.npy per vector) | after (LMDB) | after / before |", "|---|---:|---:|---:|"]
        lines += [f"| {m} | {b} | {a} | {r} |" for m, b, a, r in rows]
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
