"""Serving predictions: ONNX Runtime on the CPU by default, concurrent requests micro-batched with the results
each image gets alone, a bad file failing only its own request, the many-images limit, and a first-use ONNX
export stored in the blob store and reused by another API process.

One version is trained once for the module by the real worker (in this process) on 16 real ants/bees photos;
each test serves it from fresh apps (a fresh predictor cache) on the same data directory (SQLite).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from visiontrain.api.app import create_app
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform
from visiontrain.services.predictions import MAX_IMAGES_PER_REQUEST, PredictorCache, onnx_key

from platform_support import annotated_classification_view, jpeg, make_token

TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8, "early_stopping": False}
TOLERANCE = 1e-5  # the same image batched with others or alone: float rounding only


@dataclass
class Trained:
    config: ServerConfig
    version_id: int
    photos: list[Path]  # validation photos the model never trained on


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> Iterator[Trained]:
    from visiontrain.jobs.worker import TrainingWorker

    root = datasets_dir / "ants_bees"
    files = {label: sorted((root / "train" / label).glob("*.jpg"))[:8] for label in ("ants", "bees")}
    photos = [p for label in ("ants", "bees") for p in sorted((root / "val" / label).glob("*.jpg"))[:10]]
    base = tmp_path_factory.mktemp("serving")
    config = ServerConfig(data_dir=base / "data", database_url=f"sqlite:///{base / 'platform.db'}",
                          heartbeat_seconds=0.5, stale_after_seconds=30, poll_seconds=0.2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VISIONTRAIN_CACHE_DIR", str(base / "feature-cache"))
        platform = Platform.open(config)
        try:
            with TestClient(create_app(platform=platform, web=False),
                            headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
                _, _, model = annotated_classification_view(client, files)
                version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY})
                assert version.status_code == 201, version.text
                TrainingWorker(platform).run(max_jobs=1)
                state = client.get(f"/api/v1/versions/{version.json()['id']}").json()
                assert state["status"] == "succeeded", state
                assert {a["kind"] for a in state["artifacts"]} >= {"checkpoint", "onnx"}
        finally:
            platform.close()
    yield Trained(config=config, version_id=version.json()["id"], photos=photos)


@dataclass
class Served:
    client: TestClient
    platform: Platform
    cache: PredictorCache
    version_id: int

    def predict(self, files: list[tuple[str, bytes, str]], **params: object):  # type: ignore[no-untyped-def]
        return self.client.post(f"/api/v1/versions/{self.version_id}/predict", files=[("files", f) for f in files],
                                params=params)

    def served_model(self):  # type: ignore[no-untyped-def]
        [served] = self.cache._items.values()
        return served


@pytest.fixture
def serve(trained: Trained) -> Iterator[Callable[..., Served]]:
    """Start an API app (its own platform and predictor cache) on the trained version's data directory."""
    opened: list[tuple[Platform, TestClient]] = []

    def start(cache: PredictorCache | None = None, **config: object) -> Served:
        platform = Platform.open(trained.config.model_copy(update=config) if config else trained.config)
        app = create_app(platform=platform, web=False)
        if cache is not None:
            app.state.predictors = cache
        client = TestClient(app, headers={"Authorization": f"Bearer {make_token(platform)}"})
        client.__enter__()
        opened.append((platform, client))
        return Served(client=client, platform=platform, cache=app.state.predictors, version_id=trained.version_id)

    yield start
    for platform, client in opened:
        client.__exit__(None, None, None)
        platform.close()


def probabilities(result: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {p["label"]: p["probability"] for p in result["predictions"]}


def alone(served: Served, photos: list[Path]) -> list[dict[str, float]]:
    """Each photo's probabilities from a request of its own, one request at a time."""
    found = []
    for photo in photos:
        response = served.predict([jpeg(photo)])
        assert response.status_code == 200, response.text
        found.append(probabilities(response.json()[0]))
    return found


def assert_same(got: list[dict[str, float]], expected: list[dict[str, float]]) -> None:
    assert len(got) == len(expected)
    for one, other in zip(got, expected):
        assert one.keys() == other.keys() == {"ants", "bees"}
        assert max(abs(one[k] - other[k]) for k in one) <= TOLERANCE, (one, other)


def all_at_once(requests: list[Callable[[], object]]) -> list[object]:
    """Run the calls from as many threads, released together."""
    start = threading.Barrier(len(requests))

    def run(call: Callable[[], object]) -> object:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(run, requests))


def test_a_head_model_is_served_by_onnx_runtime_on_the_cpu_by_default(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    from visiontrain.predictor import OnnxBackend, available_cpus

    served = serve()
    response = served.predict([jpeg(trained.photos[0])])
    assert response.status_code == 200, response.text
    model = served.served_model()
    assert isinstance(model.predictor.backend, OnnxBackend)
    assert isinstance(model.predictor.backend.session, ort.InferenceSession)
    assert model.predictor.backend.threads == available_cpus()
    options = model.predictor.backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert model.onnx_source == "artifact"  # the worker's export, not a new one
    assert served.cache.exports == 0
    assert model.batcher is not None and model.batcher.stats.model_calls == 1


def test_concurrent_requests_share_model_calls_and_get_what_each_gets_alone(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    photos = trained.photos[:12]
    expected = alone(serve(), photos)
    # A long gathering window: the twelve requests released together certainly meet in it on a busy machine.
    served = serve(PredictorCache(device="cpu", max_wait_ms=500))
    responses = all_at_once([lambda photo=photo: served.predict([jpeg(photo)]) for photo in photos])
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert [r.json()[0]["file"] for r in responses] == [p.name for p in photos]
    assert_same([probabilities(r.json()[0]) for r in responses], expected)
    stats = served.served_model().batcher.stats
    assert stats.requests == len(photos) and stats.images == len(photos)
    assert stats.model_calls < len(photos)  # merged: fewer network calls than requests
    assert stats.largest_batch > 1


def test_many_images_in_one_request_are_batched_and_match_one_at_a_time(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    photos = trained.photos[:6]
    expected = alone(serve(), photos)
    served = serve(PredictorCache(device="cpu", max_batch=4))
    many = photos * 7  # 42 images: batches of at most 4, in order
    response = served.predict([jpeg(p) for p in many], top_k=2)
    assert response.status_code == 200, response.text
    results = response.json()
    assert [r["file"] for r in results] == [p.name for p in many]
    assert_same([probabilities(r) for r in results], expected * 7)
    stats = served.served_model().batcher.stats
    assert stats.images == len(many) and stats.largest_batch == 4 and stats.model_calls >= len(many) // 4


def test_a_bad_file_fails_only_its_own_request_naming_it(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    photos = trained.photos[:5]
    expected = alone(serve(), photos)
    served = serve(PredictorCache(device="cpu", max_wait_ms=500))
    whole = trained.photos[5].read_bytes()
    truncated = ("half.jpg", whole[: len(whole) // 2], "image/jpeg")  # a JPEG header, then nothing: fails when decoded
    calls = [lambda photo=photo: served.predict([jpeg(photo)]) for photo in photos] + [lambda: served.predict([truncated])]
    *good, bad = all_at_once(calls)
    assert bad.status_code == 400 and "half.jpg" in bad.json()["detail"], bad.text
    assert all(r.status_code == 200 for r in good), [r.text for r in good]
    assert_same([probabilities(r.json()[0]) for r in good], expected)
    # Among many files, the bad one is named and the request refused before the model runs.
    mixed = served.predict([jpeg(photos[0]), truncated, jpeg(photos[1])])
    assert mixed.status_code == 400 and "half.jpg" in mixed.json()["detail"], mixed.text
    assert served.served_model().batcher.stats.images == len(photos)


def test_the_many_images_limits_are_named(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    served = serve()
    photo = jpeg(trained.photos[0])
    over = served.predict([photo] * (MAX_IMAGES_PER_REQUEST + 1))
    assert over.status_code == 422, over.text
    assert f"at most {MAX_IMAGES_PER_REQUEST} images per request (got {MAX_IMAGES_PER_REQUEST + 1})" in over.text
    assert served.predict([photo] * MAX_IMAGES_PER_REQUEST).status_code == 200
    small = serve(max_upload_mb=1)  # the request's bytes: the server's upload limit
    largest = max(trained.photos, key=lambda p: p.stat().st_size)
    heavy = [largest] * (3 * 1024 * 1024 // largest.stat().st_size + 1)  # over 3 MB: past the limit and its slack
    assert len(heavy) <= MAX_IMAGES_PER_REQUEST
    refused = small.predict([jpeg(p) for p in heavy])
    assert refused.status_code == 413, refused.text
    assert "VISIONTRAIN_MAX_UPLOAD_MB" in refused.text and "1 MB" in refused.text


def test_pytorch_without_batching_is_the_previous_path_and_agrees(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.export import PARITY_TOLERANCE
    from visiontrain.predictor import TorchBackend

    photos = trained.photos[:4]
    onnx = alone(serve(), photos)
    served = serve(PredictorCache(device="cpu", backend="torch", batching=False))
    torch_results = alone(served, photos)
    model = served.served_model()
    assert isinstance(model.predictor.backend, TorchBackend) and model.batcher is None
    for one, other in zip(torch_results, onnx):
        assert max(abs(one[k] - other[k]) for k in one) <= PARITY_TOLERANCE


def test_a_first_use_export_is_stored_once_and_reused_by_another_api_process(serve, trained: Trained) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete, select

    from visiontrain.store.models import Artifact

    photos = trained.photos[:4]
    expected = alone(serve(), photos)
    # A version whose worker left no ONNX file (its export failed, or it predates serving by ONNX).
    first = serve()
    with first.platform.sessions() as session:
        session.execute(delete(Artifact).where(Artifact.version_id == trained.version_id, Artifact.kind == "onnx"))
        session.commit()
    first.platform.blobs.delete(onnx_key(trained.version_id))
    responses = all_at_once([lambda photo=photo: first.predict([jpeg(photo)]) for photo in photos])
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert_same([probabilities(r.json()[0]) for r in responses], expected)
    assert first.cache.exports == 1  # four requests at once, one export
    assert first.served_model().onnx_source == "exported"
    with first.platform.sessions() as session:
        [artifact] = session.scalars(select(Artifact).where(Artifact.version_id == trained.version_id,
                                                           Artifact.kind == "onnx")).all()
        assert artifact.blob_key == onnx_key(trained.version_id)
        assert artifact.size_bytes == first.platform.blobs.size(artifact.blob_key)
    downloaded = first.client.get(f"/api/v1/versions/{trained.version_id}/artifacts/onnx")
    assert downloaded.status_code == 200 and downloaded.content == first.platform.blobs.get_bytes(artifact.blob_key)

    second = serve()  # another API process on the same database and storage
    assert_same(alone(second, photos), expected)
    assert second.cache.exports == 0 and second.served_model().onnx_source == "artifact"
    assert second.served_model().predictor.backend.path == second.platform.blobs.local_path(onnx_key(trained.version_id))


def test_which_backend_serves_what() -> None:
    """ONNX Runtime for every model on the CPU (the detector too: faster there, one image per call); a GPU
    predict_device runs PyTorch; an explicit backend wins."""
    assert PredictorCache(device="cpu")._wants_onnx("classification")
    assert PredictorCache(device="cpu")._wants_onnx("tagging")
    assert PredictorCache(device="cpu")._wants_onnx("detection")
    assert not PredictorCache(device="cuda")._wants_onnx("classification")
    assert not PredictorCache(device="cuda:1")._wants_onnx("detection")
    assert not PredictorCache(device="cpu", backend="torch")._wants_onnx("classification")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        PredictorCache(backend="tensorrt")  # type: ignore[arg-type]
