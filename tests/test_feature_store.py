"""The feature store: LMDB per feature space (batched, several processes at once, torn writes unreadable, the
map grown as needed), its size cap with least-recently-used eviction, and the shared tier a cluster reads."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from visiontrain.blobs import LocalBlobStore
from visiontrain.data.dataset import Sample
from visiontrain.models.classifier import build_network
from visiontrain.models.preprocessing import resolve_preprocessing
from visiontrain.settings import SettingsError, TrainingSettings
from visiontrain.training import feature_store
from visiontrain.training.feature_store import (
    FeatureCacheLocation,
    LocalFeatureStore,
    decode_vector,
    encode_vector,
    shared_tier,
)
from visiontrain.training.features import FeatureCache, FeatureSpace, extract_features

DIM = 1280  # EfficientNet-Lite0's pooled features, the default backbone's


def vector(index: int, dim: int = DIM) -> np.ndarray:
    """A distinct, checkable vector per index."""
    return np.arange(dim, dtype=np.float32) + np.float32(index) * 1000


def key(index: int, owner: str = "a") -> bytes:
    return f"{owner}{index:063x}/orig".encode()


def run_script(source: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(source), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- the local tier


def test_vectors_round_trip_with_their_dtype_and_shape():
    for array in (vector(3), np.ones((2, 3), np.float16), np.linspace(0, 1, 7, dtype=np.float64)):
        back = decode_vector(encode_vector(array))
        assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)
    assert decode_vector(encode_vector(vector(1))[:-1]) is None  # a cut-short value is no vector
    assert decode_vector(b"\x93NUMPY garbage") is None


def test_batched_lookup_returns_each_key_in_order_from_two_files(tmp_path):
    store = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**9)
    store.put_many([(key(i), encode_vector(vector(i))) for i in range(0, 600, 2)])  # the even ones
    found = store.get_many([key(i) for i in range(600)])
    assert [value is not None for value in found] == [i % 2 == 0 for i in range(600)]
    assert all(np.array_equal(decode_vector(found[i]), vector(i)) for i in range(0, 600, 2))
    assert sorted(p.name for p in (tmp_path / "lmdb").iterdir()) == ["data.mdb", "lock.mdb"]  # 300 vectors, 2 files
    stats = store.stats()
    assert stats["entries"] == 300
    assert stats["bytes"] == 300 * store.footprint(key(0), encode_vector(vector(0)))
    assert stats["file_bytes"] >= 300 * DIM * 4


def test_feature_cache_get_put_and_get_many(tmp_path):
    cache = FeatureCache(tmp_path, _space())
    assert cache.get("ab" * 32, "orig") is None
    cache.put("ab" * 32, "orig", vector(7))
    cache.put_many([("cd" * 32, "orig", vector(8)), ("cd" * 32, "aug1-x", vector(9))])
    got = cache.get_many([("cd" * 32, "aug1-x"), ("ef" * 32, "orig"), ("ab" * 32, "orig")])
    assert np.array_equal(got[0], vector(9)) and got[1] is None and np.array_equal(got[2], vector(7))
    assert (cache.dir / "space.json").is_file() and (cache.dir / "lmdb" / "data.mdb").is_file()


def test_a_store_deleted_while_open_is_made_again(tmp_path):
    first = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**9)
    first.put_many([(key(1), encode_vector(vector(1)))])
    shutil.rmtree(tmp_path / "lmdb")  # the user clears the cache while a worker has it open
    again = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**9)
    assert again.get_many([key(1)]) == [None]
    again.put_many([(key(2), encode_vector(vector(2)))])
    assert (tmp_path / "lmdb" / "data.mdb").is_file() and again.stats()["entries"] == 1


def test_the_map_grows_as_the_store_does(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_store, "INITIAL_MAP_BYTES", 1 << 20)
    store = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**9)
    store.put_many([(key(i), encode_vector(vector(i))) for i in range(400)])  # 3.3 MB through a 1 MiB map
    assert all(np.array_equal(decode_vector(v), vector(i)) for i, v in enumerate(store.get_many([key(i) for i in range(400)])))
    assert store._env.env.info()["map_size"] > 1 << 20


def test_a_map_grown_by_another_process_is_adopted(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_store, "INITIAL_MAP_BYTES", 1 << 20)
    store = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**9)
    store.put_many([(key(0), encode_vector(vector(0)))])
    writer = run_script("""
        import sys
        from visiontrain.training import feature_store
        from visiontrain.training.feature_store import LocalFeatureStore, encode_vector
        import numpy as np
        feature_store.INITIAL_MAP_BYTES = 1 << 20
        store = LocalFeatureStore(sys.argv[1], max_bytes=10**9)
        store.put_many([(f"b{i:063x}/orig".encode(), encode_vector(np.full(1280, i, np.float32))) for i in range(400)])
    """, tmp_path / "lmdb")
    _, errors = writer.communicate()
    assert writer.returncode == 0, errors
    found = store.get_many([f"b{i:063x}/orig".encode() for i in range(400)])  # beyond this process's 1 MiB map
    assert all(np.array_equal(decode_vector(v), np.full(DIM, i, np.float32)) for i, v in enumerate(found))
    store.put_many([(key(1), encode_vector(vector(1)))])
    assert store.stats()["entries"] == 402


# --- several processes, killed writers

CONCURRENT = """
    import sys, time
    import numpy as np
    from visiontrain.training.feature_store import LocalFeatureStore, decode_vector, encode_vector
    path, me, other, batches, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    store = LocalFeatureStore(path, max_bytes=10**10)
    def vec(owner, i):
        return np.arange(1280, dtype=np.float32) + i * 1000 + (0.5 if owner == "a" else 0.25)
    def key(owner, i):
        return f"{owner}{i:063x}/orig".encode()
    for batch in range(batches):
        store.put_many([(key(me, i), encode_vector(vec(me, i))) for i in range(batch * size, (batch + 1) * size)])
        # Lock step: wait for the other process's same batch, checking everything of it that is visible.
        while True:
            seen = store.get_many([key(other, i) for i in range((batch + 1) * size)])
            for i, value in enumerate(seen):
                assert value is None or np.array_equal(decode_vector(value), vec(other, i)), (me, i)
            if seen[-1] is not None:
                break
            time.sleep(0.001)
    every = store.get_many([key(o, i) for o in "ab" for i in range(batches * size)])
    assert all(np.array_equal(decode_vector(v), vec(o, i)) for (o, i), v in zip([(o, i) for o in "ab" for i in range(batches * size)], every))
    print("ok")
"""


def test_two_processes_write_and_read_the_same_store_at_once(tmp_path):
    batches, size = 15, 20
    processes = [run_script(CONCURRENT, tmp_path / "lmdb", me, other, batches, size) for me, other in (("a", "b"), ("b", "a"))]
    while any(p.poll() is None for p in processes):  # one that fails would leave the other waiting for it
        if any(p.returncode not in (None, 0) for p in processes):
            for p in processes:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.05)
    outputs = [p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["ok", "ok"]
    store = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**10)
    stats = store.stats()
    assert stats["entries"] == 2 * batches * size
    # The byte count both kept stays exact: every write was counted once, none lost to the other process.
    assert stats["bytes"] == 2 * batches * size * store.footprint(key(0), encode_vector(vector(0)))


def test_a_writer_killed_inside_its_transaction_leaves_nothing_readable(tmp_path):
    store = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**9)
    store.put_many([(key(i), encode_vector(vector(i))) for i in range(5)])
    killed = run_script("""
        import os, sys
        from visiontrain.training.feature_store import LocalFeatureStore, encode_vector
        import numpy as np
        store = LocalFeatureStore(sys.argv[1], max_bytes=10**9)
        # Every vector of the batch is in the transaction when the process dies, before the commit.
        LocalFeatureStore._record_total = lambda self, txn, total: os._exit(3)
        store.put_many([(f"t{i:063x}/orig".encode(), encode_vector(np.full(1280, i, np.float32))) for i in range(50)])
    """, tmp_path / "lmdb")
    _, errors = killed.communicate()
    assert killed.returncode == 3, errors
    assert store.get_many([f"t{i:063x}/orig".encode() for i in range(50)]) == [None] * 50
    assert all(np.array_equal(decode_vector(v), vector(i)) for i, v in enumerate(store.get_many([key(i) for i in range(5)])))
    footprint = store.footprint(key(0), encode_vector(vector(0)))
    assert store.stats()["entries"] == 5 and store.stats()["bytes"] == 5 * footprint
    store.put_many([(key(i), encode_vector(vector(i))) for i in range(5, 10)])  # the dead writer's lock is free again
    assert store.stats()["entries"] == 10


def test_a_writer_killed_at_any_moment_leaves_only_whole_vectors(tmp_path):
    started = tmp_path / "started"
    writer = run_script("""
        import sys
        from pathlib import Path
        from visiontrain.training.feature_store import LocalFeatureStore, encode_vector
        import numpy as np
        store = LocalFeatureStore(sys.argv[1], max_bytes=10**10)
        batch = 0
        while True:
            store.put_many([(f"k{i:063x}/orig".encode(), encode_vector(np.arange(1280, dtype=np.float32) + i))
                            for i in range(batch * 64, (batch + 1) * 64)])
            if batch == 2:
                Path(sys.argv[2]).touch()
            batch += 1
    """, tmp_path / "lmdb", started)
    while not started.exists() and writer.poll() is None:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)  # wherever it is: mid-transaction most of the time
    _, errors = writer.communicate()
    assert writer.returncode == -signal.SIGKILL, errors
    store = LocalFeatureStore(tmp_path / "lmdb", max_bytes=10**10)
    count = store.stats()["entries"]
    assert count >= 3 * 64 and count % 64 == 0  # whole batches only
    found = store.get_many([f"k{i:063x}/orig".encode() for i in range(count + 64)])
    assert all(np.array_equal(decode_vector(v), np.arange(DIM, dtype=np.float32) + i) for i, v in enumerate(found[:count]))
    assert found[count:] == [None] * 64


# --- the size cap


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_eviction_at_the_cap_drops_the_least_recently_used(tmp_path, monkeypatch, caplog):
    clock = Clock(1000)
    monkeypatch.setattr(feature_store, "_clock", clock)
    footprint = LocalFeatureStore(tmp_path / "probe", 1).footprint(key(0), encode_vector(vector(0)))
    cap = int(10.5 * footprint)  # ten entries fit; an eviction goes down to 90%: 9.45 entries

    def store() -> LocalFeatureStore:
        clock.now += 100  # each run opens its cache later than the one before
        return LocalFeatureStore(tmp_path / "lmdb", max_bytes=cap)

    store().put_many([(key(i), encode_vector(vector(i))) for i in range(8)])  # a first run writes 8
    store().get_many([key(i) for i in range(4)])  # a second run reads the first 4 again (stamped when it is dropped)
    third = store()
    assert third.put_many([(key(i), encode_vector(vector(i))) for i in range(100, 104)]) == 3  # 12 entries > cap
    present = {i for i, v in zip(range(8), third.get_many([key(i) for i in range(8)])) if v is not None}
    assert present == {0, 1, 2, 3, 7}  # the 3 least recently used went; the ones read again stayed
    assert all(v is not None for v in third.get_many([key(i) for i in range(100, 104)]))  # just written: kept
    assert third.stats()["bytes"] == 9 * footprint

    # What the current run has read or written is never evicted, even past the cap (with a warning).
    fourth = store()
    fourth.get_many([key(i) for i in (0, 1, 2, 3, 7, 100, 101, 102, 103)])
    with caplog.at_level(logging.WARNING, logger="visiontrain.features"):
        assert fourth.put_many([(key(i), encode_vector(vector(i))) for i in range(200, 204)]) == 0
    assert fourth.stats()["entries"] == 13 and "above its" in caplog.text and feature_store.CACHE_GB_ENV in caplog.text
    # The next run evicts them by age again.
    fifth = store()
    assert fifth.put_many([(key(300), encode_vector(vector(300)))]) == 5
    assert fifth.stats()["bytes"] == 9 * footprint


def test_the_cap_comes_from_the_argument_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(feature_store.CACHE_GB_ENV, "0.5")
    assert FeatureCacheLocation.resolve(tmp_path).max_bytes == 500_000_000
    assert FeatureCacheLocation.resolve(tmp_path, size_gb=2).max_bytes == 2_000_000_000
    monkeypatch.delenv(feature_store.CACHE_GB_ENV)
    assert FeatureCacheLocation.resolve(tmp_path).max_bytes == 20_000_000_000
    monkeypatch.setenv(feature_store.CACHE_GB_ENV, "lots")
    with pytest.raises(SettingsError, match="VISIONTRAIN_FEATURE_CACHE_GB must be a number of gigabytes above 0.*'lots'"):
        FeatureCacheLocation.resolve(tmp_path)
    with pytest.raises(SettingsError, match="feature cache size must be a number of gigabytes above 0"):
        FeatureCacheLocation.resolve(tmp_path, size_gb=0)


def test_the_cli_refuses_a_cache_size_that_is_not_a_size(ants_bees_small, tmp_path):
    from visiontrain.cli.main import app

    result = CliRunner().invoke(app, ["train", str(ants_bees_small), "--out", str(tmp_path / "run"), "--cache-size-gb", "0"])
    assert result.exit_code == 2
    assert "feature cache size must be a number of gigabytes above 0" in result.output
    assert not (tmp_path / "run").exists()


# --- the shared tier

SIZE = 64


@pytest.fixture(scope="module")
def network():
    return build_network(TrainingSettings(), 2)


@pytest.fixture()
def samples(ants_bees_small):
    return [Sample(p, p.parent.name) for p in sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[:2]
            + sorted((ants_bees_small / "train" / "bees").glob("*.jpg"))[:2]]


def _space() -> FeatureSpace:
    from visiontrain.models.preprocessing import Preprocessing

    return FeatureSpace.of(TrainingSettings(), Preprocessing(image_size=SIZE, resize_mode="squash", mean=(0.5,) * 3, std=(0.5,) * 3))


def _extract(network, samples, location):
    settings = TrainingSettings(image_size=SIZE)
    preprocessing = resolve_preprocessing(network.backbone, image_size=SIZE, resize_mode=settings.resize_mode)
    cache = FeatureCache(location, FeatureSpace.of(settings, preprocessing))
    result = extract_features(network, samples, settings=settings, preprocessing=preprocessing, cache=cache,
                              augmented_copies=1, device=torch.device("cpu"))
    return result, cache


def test_a_second_machine_reads_the_shared_tier_instead_of_running_the_backbone(network, samples, blob_store, tmp_path, monkeypatch):
    from visiontrain.training import features

    runners = []
    real_make_runner = features.make_runner

    def counted(*args, **kwargs):
        runners.append(args)
        return real_make_runner(*args, **kwargs)

    monkeypatch.setattr(features, "make_runner", counted)
    first, first_cache = _extract(network, samples, FeatureCacheLocation.resolve(tmp_path / "machine-a", shared=blob_store))
    assert (first.hits, first.misses, len(runners)) == (0, 8, 1)
    keys = list(blob_store.keys("features"))
    assert len(keys) == 8 + 1  # one object per (image, variant), and what the space key stands for
    assert f"features/{first_cache.space_key}/space.json" in keys

    second, second_cache = _extract(network, samples, FeatureCacheLocation.resolve(tmp_path / "machine-b", shared=blob_store))
    assert (second.hits, second.misses, second_cache.shared_hits) == (8, 0, 8)
    assert len(runners) == 1  # the backbone never ran on the second machine
    assert torch.equal(second.features, first.features)
    again, again_cache = _extract(network, samples, FeatureCacheLocation.resolve(tmp_path / "machine-b", shared=blob_store))
    assert (again.hits, again_cache.shared_hits) == (8, 0)  # now from its own local tier
    assert again_cache.stats()["entries"] == 8


def test_without_a_shared_tier_each_machine_computes_its_own(network, samples, tmp_path):
    _extract(network, samples, FeatureCacheLocation.resolve(tmp_path / "machine-a"))
    second, _ = _extract(network, samples, FeatureCacheLocation.resolve(tmp_path / "machine-b"))
    assert (second.hits, second.misses) == (0, 8)


def test_the_platform_shares_an_object_store_not_its_own_disk(tmp_path, blob_store):
    local = LocalBlobStore(tmp_path / "blobs")
    assert shared_tier(local) is None  # a file:// store: a second copy of the local cache
    assert shared_tier(blob_store) is (None if blob_store.url.startswith("file:") else blob_store)


def test_a_location_pickles_for_another_process_with_its_shared_tier_by_url(tmp_path, blob_store):
    location = FeatureCacheLocation.resolve(tmp_path / "cache", size_gb=1, shared=blob_store)
    copy = pickle.loads(pickle.dumps(location))
    assert (copy.root, copy.max_bytes, copy.shared.url) == (location.root, location.max_bytes, blob_store.url)
    blob_store.put_bytes("features/x/probe", b"seen by both")
    assert copy.shared.get_bytes("features/x/probe") == b"seen by both"



def test_engine_runs_on_two_machines_compute_each_image_once(ants_bees_small, tmp_path):
    """engine.train with a FeatureCacheLocation: the second machine's run reads every feature from the shared tier."""
    from visiontrain import engine

    shared = LocalBlobStore(tmp_path / "object-store")
    settings = {"image_size": SIZE, "epochs": 1, "augmented_copies": 1, "batch_size": 8, "fine_tune": False}
    first = engine.train(settings, ants_bees_small, tmp_path / "run-a",
                         cache_dir=FeatureCacheLocation.resolve(tmp_path / "machine-a", size_gb=1, shared=shared))
    second = engine.train(settings, ants_bees_small, tmp_path / "run-b",
                          cache_dir=FeatureCacheLocation.resolve(tmp_path / "machine-b", size_gb=1, shared=shared))
    assert first["status"] == second["status"] == "succeeded"
    computed = first["counts"]["cache_misses"]
    assert computed == first["counts"]["train_features"] + first["counts"]["val_images"] and first["counts"]["cache_hits"] == 0
    assert (second["counts"]["cache_hits"], second["counts"]["cache_misses"]) == (computed, 0)
    assert second["best_metrics"]["val_accuracy"] == first["best_metrics"]["val_accuracy"]


class CountedReads(LocalBlobStore):
    """A real local blob store that counts the reads asked of it."""

    reads = 0

    def get_bytes(self, key: str) -> bytes:
        self.reads += 1
        return super().get_bytes(key)


def test_a_shared_tier_that_holds_none_of_the_misses_is_asked_about_the_first_few_only(tmp_path):
    shared = CountedReads(tmp_path / "object-store")
    writer = FeatureCache(FeatureCacheLocation.resolve(tmp_path / "machine-a", shared=shared), _space())
    writer.put_many([(f"{i:064x}", "orig", vector(i)) for i in range(1000, 1010)])  # ten images, in the shared tier
    reader = FeatureCache(FeatureCacheLocation.resolve(tmp_path / "machine-b", shared=shared), _space())
    misses = [(f"{i:064x}", "orig") for i in range(5000, 5000 + feature_store.SHARED_PROBE * 4)]  # a new dataset: none shared
    assert reader.get_many(misses) == [None] * len(misses)
    assert shared.reads == feature_store.SHARED_PROBE  # not one request per miss
    # Where the first misses are found there, every miss is asked.
    shared.reads = 0
    found = reader.get_many([(f"{i:064x}", "orig") for i in range(1000, 1010)] + misses)
    assert all(np.array_equal(v, vector(1000 + i)) for i, v in enumerate(found[:10])) and found[10:] == [None] * len(misses)
    assert shared.reads == 10 + len(misses) and reader.shared_hits == 10
