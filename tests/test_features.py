"""The feature cache: computed once, read back, invalidated by image, backbone, resizer and augmentation changes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from visiontrain.data.dataset import Sample
from visiontrain.models.classifier import build_network
from visiontrain.models.preprocessing import resolve_preprocessing
from visiontrain.settings import TrainingSettings
from visiontrain.training.features import FeatureCache, FeatureSpace, extract_features

SIZE = 64  # small inputs keep these tests fast; the cache logic does not depend on size


@pytest.fixture(scope="module")
def network():
    return build_network(TrainingSettings(), 2)


@pytest.fixture()
def samples(ants_bees_small, tmp_path):
    files = sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[:3] + sorted((ants_bees_small / "train" / "bees").glob("*.jpg"))[:3]
    copies = []
    for path in files:
        target = tmp_path / "images" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        copies.append(Sample(target, path.parent.name))
    return copies


def _extract(network, samples, cache_root, copies=1, **settings_overrides):
    settings = TrainingSettings(**{"image_size": SIZE, **settings_overrides})
    preprocessing = resolve_preprocessing(network.backbone, image_size=settings.image_size, resize_mode=settings.resize_mode)
    cache = FeatureCache(cache_root, FeatureSpace.of(settings, preprocessing))
    return extract_features(network, samples, settings=settings, preprocessing=preprocessing,
                            cache=cache, augmented_copies=copies, device=torch.device("cpu"))


def test_second_extraction_reads_everything_from_the_cache(network, samples, tmp_path):
    first = _extract(network, samples, tmp_path / "cache")
    assert (first.hits, first.misses) == (0, 12)
    assert first.features.shape == (12, network.num_features)
    assert first.original.tolist() == [True, False] * 6
    assert first.sample_index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    second = _extract(network, samples, tmp_path / "cache")
    assert (second.hits, second.misses) == (12, 0)
    assert torch.equal(first.features, second.features)


def test_cached_features_equal_a_direct_forward_pass(network, samples, tmp_path):
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input

    result = _extract(network, samples, tmp_path / "cache", copies=0)
    preprocessing = resolve_preprocessing(network.backbone, image_size=SIZE, resize_mode="squash")
    image = model_input(preprocessing)(open_image(samples[0].path, draft_size=SIZE))
    with torch.inference_mode():
        direct = network.backbone.eval()(image[None])[0]
    assert torch.allclose(result.features[0], direct, atol=1e-4)


def test_changed_image_bytes_are_a_miss_renamed_file_is_a_hit(network, samples, tmp_path):
    _extract(network, samples, tmp_path / "cache", copies=0)
    renamed = samples[0].path.with_name("renamed.jpg")
    samples[0].path.rename(renamed)
    samples[0] = Sample(renamed, samples[0].label)
    assert _extract(network, samples, tmp_path / "cache", copies=0).misses == 0
    from PIL import Image

    Image.open(samples[1].path).rotate(90).save(samples[1].path)  # new content under the same name
    result = _extract(network, samples, tmp_path / "cache", copies=0)
    assert (result.hits, result.misses) == (5, 1)


@pytest.mark.parametrize("change", [{"resize_mode": "letterbox"}, {"image_size": 96}, {"pretrained": False}])
def test_feature_space_changes_invalidate_everything(network, samples, tmp_path, change):
    """What the cache answers, not only that two keys differ: after a change nothing is read back,
    and the first feature space's entries are still there for a run that goes back to it."""
    first = _extract(network, samples, tmp_path / "cache", copies=0)
    assert (first.hits, first.misses) == (0, 6)
    changed = _extract(network, samples, tmp_path / "cache", copies=0, **change)
    assert (changed.hits, changed.misses) == (0, 6)
    if "image_size" in change or "resize_mode" in change:  # other pixels in: other features out
        assert not torch.allclose(changed.features, first.features)
    again = _extract(network, samples, tmp_path / "cache", copies=0)
    assert (again.hits, again.misses) == (6, 0) and torch.equal(again.features, first.features)


def test_augmentation_change_recomputes_only_augmented_copies(network, samples, tmp_path):
    _extract(network, samples, tmp_path / "cache", copies=1, color=0.2)
    result = _extract(network, samples, tmp_path / "cache", copies=1, color=0.4)
    assert (result.hits, result.misses) == (6, 6)  # originals hit, copies recomputed
    more = _extract(network, samples, tmp_path / "cache", copies=2, color=0.4)
    assert (more.hits, more.misses) == (12, 6)  # only the new second copy is computed


def test_augmented_copies_are_reproducible_and_differ_from_the_original(network, samples, tmp_path):
    one = _extract(network, samples[:2], tmp_path / "a", copies=1)
    two = _extract(network, samples[:2], tmp_path / "b", copies=1)
    assert torch.allclose(one.features, two.features, atol=1e-5)
    assert not torch.allclose(one.features[0], one.features[1], atol=1e-3)


def test_a_stored_value_that_is_not_a_whole_vector_is_recomputed(network, samples, tmp_path):
    """LMDB never shows a torn write (tests/test_feature_store.py kills writers); bytes damaged on the disk
    are still a miss, not a crash or a wrong vector."""
    result = _extract(network, samples[:1], tmp_path / "cache", copies=0)
    settings = TrainingSettings(image_size=SIZE)
    preprocessing = resolve_preprocessing(network.backbone, image_size=SIZE, resize_mode=settings.resize_mode)
    cache = FeatureCache(tmp_path / "cache", FeatureSpace.of(settings, preprocessing))
    from visiontrain.training.features import file_hash

    cache.local.put_many([(cache.local_key(file_hash(samples[0].path), "orig"), b"vf1\x00\x01garbage")])
    again = _extract(network, samples[:1], tmp_path / "cache", copies=0)
    assert again.misses == 1 and np.allclose(again.features.numpy(), result.features.numpy(), atol=1e-5)
    assert _extract(network, samples[:1], tmp_path / "cache", copies=0).misses == 0  # the recomputed vector replaced it


def test_onnx_runtime_and_pytorch_give_the_same_features(network, samples, tmp_path, monkeypatch):
    onnx = _extract(network, samples, tmp_path / "onnx", copies=1)
    assert len(list((tmp_path / "onnx").rglob("backbone-b*.onnx"))) == 1  # exported once, kept beside the features
    monkeypatch.setenv("VISIONTRAIN_FEATURE_BACKEND", "torch")
    torch_features = _extract(network, samples, tmp_path / "torch", copies=1)
    assert not list((tmp_path / "torch").rglob("*.onnx"))
    assert torch.allclose(onnx.features, torch_features.features, atol=1e-4)


def test_failed_export_falls_back_to_pytorch(network, samples, tmp_path, monkeypatch, caplog):
    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter cannot handle this model")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    result = _extract(network, samples[:2], tmp_path / "cache", copies=0)
    assert result.misses == 2 and result.features.shape == (2, network.num_features)
    assert "using PyTorch" in caplog.text and "exporter cannot handle this model" in caplog.text


def _space_key(**overrides) -> str:
    from visiontrain.models.preprocessing import Preprocessing

    settings = TrainingSettings(**overrides)
    preprocessing = Preprocessing(image_size=64, resize_mode="squash", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return FeatureSpace.of(settings, preprocessing).key()


def test_random_backbones_drawn_with_other_seeds_are_other_feature_spaces():
    # Without pretrained weights the seed draws the backbone: features of seed 1 are not those of seed 2.
    assert _space_key(pretrained=False, seed=1) != _space_key(pretrained=False, seed=2)
    # With ImageNet weights the seed changes nothing the backbone computes, so the cache is shared.
    assert _space_key(pretrained=True, seed=1) == _space_key(pretrained=True, seed=2)


def test_the_augmentation_key_follows_every_augmentation_setting():
    from visiontrain.training.features import AUGMENTATION_FIELDS, augmentation_key

    assert set(AUGMENTATION_FIELDS) == set(TrainingSettings.field_groups()["Augmentation"]) - {"augmented_copies"}
    base = TrainingSettings()
    changed = {"horizontal_flip": False, "vertical_flip": True, "color": 0.5, "scale": 0.5, "skew": 0.5, "gaussian_noise": 0.1}
    assert set(changed) == set(AUGMENTATION_FIELDS)  # a new augmentation setting must be added here too
    for name, value in changed.items():
        assert augmentation_key(base.model_copy(update={name: value})) != augmentation_key(base), name
    assert augmentation_key(base.model_copy(update={"augmented_copies": 3})) == augmentation_key(base)


def test_the_feature_space_names_the_libraries_that_change_the_numbers(monkeypatch):
    import timm

    before = _space_key()
    monkeypatch.setattr(timm, "__version__", "0.0.0-other")
    assert _space_key() != before
