"""Heads: the new layers trained on top of the backbone's pooled features."""

from __future__ import annotations

from torch import nn


def build_head(in_features: int, num_outputs: int, *, hidden_layers: int, hidden_units: int, dropout: float) -> nn.Sequential:
    """Dropout → [Linear → ReLU → Dropout] × hidden_layers → Linear (outputs are logits)."""
    layers: list[nn.Module] = []
    width = in_features
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_units), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden_units
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)
