"""Predictor on real photos: probabilities, top-k order, every input kind, batching, per-image errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from visiontrain.data.images import open_image
from visiontrain.data.transforms import model_input
from visiontrain.models.checkpoint import CheckpointError, load_checkpoint
from visiontrain.predictor import Predictor, measure_throughput

from model_checkpoints import write_random_head_checkpoint

CLASSES = ["ants", "bees", "wasps"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ants_bees_small):
    """A real checkpoint: the pretrained lite0 backbone with a seeded random 3-class head."""
    return write_random_head_checkpoint(tmp_path_factory.mktemp("predict_run"), CLASSES)


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


@pytest.fixture(scope="module")
def photos(ants_bees_small):
    return sorted((ants_bees_small / "val").glob("*/*.jpg"))[:5]


def test_probabilities_sum_to_one_and_top_k_is_most_probable_first(predictor, photos):
    results = predictor.predict(photos, top_k=3)
    assert [r["path"] for r in results] == [str(p) for p in photos]
    for result in results:
        assert result["error"] is None
        probabilities = [p["probability"] for p in result["predictions"]]
        assert [p["label"] for p in result["predictions"]] and sorted(p["label"] for p in result["predictions"]) == sorted(CLASSES)
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    # Fewer labels when asked; never more than there are classes.
    assert len(predictor.predict(photos[:1], top_k=1)[0]["predictions"]) == 1
    assert len(predictor.predict(photos[:1], top_k=50)[0]["predictions"]) == len(CLASSES)


def test_matches_the_network_run_by_hand(run_dir, predictor, photos):
    """Same pixels as training (draft decode at the model size + model_input) and the same network."""
    loaded = load_checkpoint(run_dir)
    transform = model_input(loaded.preprocessing)
    batch = torch.stack([transform(open_image(p, draft_size=loaded.preprocessing.image_size)) for p in photos])
    with torch.inference_mode():
        expected = torch.softmax(loaded.network(batch), dim=1).numpy()
    got = predictor.score(photos).probabilities
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_path_bytes_and_pil_inputs_agree_and_batching_does_not_change_results(predictor, photos):
    size = predictor.preprocessing.image_size
    by_path = predictor.score(photos, batch_size=32).probabilities
    by_bytes = predictor.score([p.read_bytes() for p in photos], batch_size=2).probabilities
    by_pil = predictor.score([open_image(p, draft_size=size) for p in photos], batch_size=1).probabilities
    np.testing.assert_allclose(by_bytes, by_path, atol=1e-5)
    np.testing.assert_allclose(by_pil, by_path, atol=1e-5)
    results = predictor.predict([photos[0].read_bytes()])
    assert results[0]["path"] is None and results[0]["error"] is None


def test_a_bad_image_is_reported_and_the_others_still_predicted(predictor, photos, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photos[0].read_bytes()[:2000])
    inputs = [photos[0], tmp_path / "missing.jpg", fake, tmp_path, truncated, b"", photos[1]]
    results = predictor.predict(inputs, batch_size=3)
    assert [r["error"] is None for r in results] == [True, False, False, False, False, False, True]
    assert "cannot read file" in results[1]["error"]
    assert "not an image" in results[2]["error"]
    assert "folder" in results[3]["error"]
    assert "truncated" in results[4]["error"]
    assert all(r["predictions"] == [] for r in results[1:6])
    # The good images get the same answer as when predicted without the bad ones.
    alone = predictor.predict([photos[0], photos[1]])
    for got, expected in zip([results[0], results[6]], alone):
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in expected["predictions"]]
        assert [p["probability"] for p in got["predictions"]] == pytest.approx(
            [p["probability"] for p in expected["predictions"]], abs=1e-5)
    json.dumps(results)  # plain JSON types only


def test_wrong_arguments_are_refused(run_dir, predictor, photos, tmp_path):
    with pytest.raises(ValueError, match="top_k"):
        predictor.predict(photos[:1], top_k=0)
    with pytest.raises(ValueError, match="batch_size"):
        predictor.predict(photos[:1], batch_size=0)
    with pytest.raises(TypeError, match="list of images"):
        predictor.predict(str(photos[0]))
    with pytest.raises(TypeError, match="int"):
        predictor.predict([42])
    with pytest.raises(ValueError, match="unknown backend"):
        Predictor.load(run_dir, backend="tensorrt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Predictor.load(tmp_path / "nowhere")
    not_a_checkpoint = tmp_path / "best.pt"
    not_a_checkpoint.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Predictor.load(tmp_path)


class _Clock:
    """A stand-in for time.perf_counter that advances only when the measured work says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_measure_throughput_is_images_over_the_best_timed_pass(predictor, photos, tmp_path, monkeypatch):
    """One warm-up pass, then ``rounds`` timed passes; images / the fastest one (a fake clock, so exact)."""
    import sys
    import types

    clock = _Clock()
    module = sys.modules[measure_throughput.__module__]
    monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    durations = iter([9.0, 0.5, 0.25, 0.4])  # warm-up (not counted), then three timed passes
    calls: list[tuple[int, int]] = []
    real_score = predictor.score

    def timed_score(images, batch_size=32):  # type: ignore[no-untyped-def]
        calls.append((len(images), batch_size))
        clock.now += next(durations)
        return real_score(images, batch_size)

    monkeypatch.setattr(predictor, "score", timed_score)
    assert measure_throughput(predictor, photos[:2], batch_size=2, rounds=3) == pytest.approx(2 / 0.25)
    assert calls == [(2, 2)] * 4

    # Network only: images decoded once beforehand, each batch timed through the backend alone.
    monkeypatch.undo()
    monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    batches: list[int] = []
    real_backend = predictor.backend

    def timed_backend(batch):  # type: ignore[no-untyped-def]
        batches.append(batch.shape[0])
        clock.now += 0.1
        return real_backend(batch)

    monkeypatch.setattr(predictor, "backend", timed_backend)
    assert measure_throughput(predictor, photos[:3], batch_size=2, rounds=2, include_decoding=False) == pytest.approx(3 / 0.2)
    assert batches == [2, 1] * 3  # warm-up + two rounds, batches of 2 then the remainder
    monkeypatch.undo()
    with pytest.raises(ValueError, match="could not be read"):
        measure_throughput(predictor, [tmp_path / "missing.jpg"], batch_size=1, rounds=1)
