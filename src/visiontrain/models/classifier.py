"""The assembled network: a timm backbone (pooled features) followed by a task head."""

from __future__ import annotations

import torch
from torch import nn

from visiontrain.models.backbones import backbone_blocks, backbone_sequence, create_backbone
from visiontrain.models.heads import build_head
from visiontrain.settings import TrainingSettings


class TransferNet(nn.Module):
    """backbone → pooled features → head → logits. ``features()`` and ``head`` are used apart when
    the backbone is frozen, so that its features can be cached."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def num_features(self) -> int:
        return int(self.backbone.num_features)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def freeze_backbone(self) -> None:
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def split_backbone(self, n_blocks: int) -> tuple[nn.Module, nn.Module] | None:
        """(frozen part, last ``n_blocks`` blocks + pooling): ``tail(front(x)) == backbone(x)``, the same
        modules as in ``backbone`` (training the tail trains the network). None when the backbone is
        not a chain of blocks (fine-tuning then runs the whole backbone each step)."""
        sequence = backbone_sequence(self.backbone)
        blocks = len(backbone_blocks(self.backbone))
        if sequence is None or len(sequence) != blocks + 1 or not 0 < n_blocks <= blocks:
            return None
        cut = blocks - n_blocks
        return nn.Sequential(*sequence[:cut]), nn.Sequential(*sequence[cut:])

    def unfreeze_last(self, n_blocks: int) -> list[nn.Module]:
        """Make the last ``n_blocks`` backbone blocks trainable; returns them."""
        self.freeze_backbone()
        blocks = backbone_blocks(self.backbone)[-n_blocks:] if n_blocks > 0 else []
        for block in blocks:
            block.requires_grad_(True)
        return blocks


def build_network(settings: TrainingSettings, num_outputs: int, *, pretrained: bool | None = None) -> TransferNet:
    """The network for these settings. ``pretrained=False`` skips loading weights (a checkpoint follows)."""
    use_pretrained = settings.pretrained if pretrained is None else pretrained
    backbone = create_backbone(
        settings.backbone,
        pretrained=use_pretrained,
        weights_path=settings.weights_path if use_pretrained else None,
    )
    head = build_head(
        int(backbone.num_features),
        num_outputs,
        hidden_layers=settings.head_layers,
        hidden_units=settings.head_units,
        dropout=settings.dropout,
    )
    return TransferNet(backbone, head)
