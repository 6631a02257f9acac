"""The backbone registry: every entry builds and pools; offline weights load; hub failures say what works offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visiontrain.models.backbones import (
    BACKBONES,
    OFFLINE_BACKBONES,
    BackboneError,
    backbone_blocks,
    create_backbone,
)
from visiontrain.settings import Backbone, TrainingSettings


def test_registry_covers_every_backbone_setting():
    assert set(BACKBONES) == {b.value for b in Backbone}


def test_the_offline_backbones_are_exactly_those_whose_weights_are_on_this_machine(monkeypatch):
    """Not the tuple against a literal: each one named offline has a packaged weights file that loads
    with no network, and each other one really needs the hub (refused offline, no packaged file)."""
    from visiontrain.models.backbones import get_spec, pretrained_weights_problem

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert OFFLINE_BACKBONES  # the default must work offline
    assert TrainingSettings().backbone in OFFLINE_BACKBONES
    for name in BACKBONES:
        problem = pretrained_weights_problem(name, pretrained=True, weights_path=None)
        if name in OFFLINE_BACKBONES:
            weights = Path(get_spec(name).offline_weights())
            assert weights.is_file() and weights.stat().st_size > 1_000_000, name
            assert problem is None, (name, problem)
        else:
            assert get_spec(name).offline_weights is None
            assert problem is not None and "cannot reach" in problem, name


def test_cached_hub_weights_are_used_without_the_network(monkeypatch, tmp_path):
    """An earlier download in the Hugging Face cache builds the backbone offline, from that file."""
    import timm

    from visiontrain.models import backbones

    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.nn.init.constant_(reference.conv1.weight, 0.5)
    cached = tmp_path / "model.pth"
    torch.save(reference.state_dict(), cached)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(backbones, "cached_hub_weights", lambda name: str(cached) if name == "resnet18" else None)
    model = create_backbone("resnet18", pretrained=True)
    assert torch.equal(model.conv1.weight, reference.conv1.weight)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_pools_and_has_blocks(name):
    model = create_backbone(name, pretrained=False).eval()
    with torch.inference_mode():
        features = model(torch.zeros(1, 3, 64, 64))
    assert features.shape == (1, model.num_features)
    assert len(backbone_blocks(model)) >= 8


@pytest.mark.slow  # each runs a 224 px backbone over 16 photos
@pytest.mark.parametrize("name", OFFLINE_BACKBONES)
def test_offline_weights_are_the_imagenet_ones(name, datasets_dir):
    """The packaged weights, loaded by position, recognise real photos: ImageNet's "bee" (309) and
    "ant" (310) are in the top 5 for most of 8 photos of each (random weights: about none)."""
    import timm

    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input
    from visiontrain.models.backbones import _read_state_dict, get_spec
    from visiontrain.models.preprocessing import resolve_preprocessing

    backbone = create_backbone(name).eval()
    # The package also carries the ImageNet classifier: put it back on to read the labels.
    full = _read_state_dict(Path(get_spec(name).offline_weights()))
    classifier = timm.create_model(f"tf_{name}", pretrained=False)
    classifier.load_state_dict({**backbone.state_dict(), "classifier.weight": full["_fc.weight"], "classifier.bias": full["_fc.bias"]})
    classifier.eval()
    preprocessing = resolve_preprocessing(backbone, image_size=None, resize_mode="center_crop")
    for folder, imagenet_class in (("bees", 309), ("ants", 310)):
        photos = sorted((datasets_dir / "ants_bees" / "val" / folder).glob("*.jpg"))[:8]
        images = torch.stack([model_input(preprocessing)(open_image(p)) for p in photos])
        with torch.inference_mode():
            top5 = classifier(images).topk(5).indices.tolist()
        assert sum(imagenet_class in row for row in top5) >= 6, (folder, top5)


def test_hub_backbone_offline_fails_fast_naming_offline_backbones(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        create_backbone("resnet18", pretrained=True)


def test_local_weights_file(tmp_path):
    reference = create_backbone("efficientnet_lite0")
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    loaded = create_backbone("efficientnet_lite0", weights_path=str(path))
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(BackboneError, match="do not fit this backbone"):
        create_backbone("resnet18", weights_path=str(path))
    with pytest.raises(BackboneError, match="weights file not found"):
        create_backbone("efficientnet_lite0", weights_path=str(tmp_path / "missing.pth"))
