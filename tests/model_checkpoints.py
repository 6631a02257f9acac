"""A real checkpoint for the predict, export and evaluate tests (no training needed)."""

from __future__ import annotations

from pathlib import Path


def write_random_head_checkpoint(run: Path, classes: list[str], *, seed: int = 0, image_size: int = 96,
                                 val_images: list[Path] | None = None) -> Path:
    """A real checkpoint in ``run``: the pretrained lite0 backbone with a seeded random head (and,
    when given, a val_samples.json labelled by folder name). For predict/export/evaluate mechanics."""
    import json

    import torch

    from visiontrain.models.checkpoint import save_checkpoint
    from visiontrain.models.classifier import build_network
    from visiontrain.models.preprocessing import resolve_preprocessing
    from visiontrain.settings import TrainingSettings

    torch.manual_seed(seed)
    settings = TrainingSettings(image_size=image_size)
    network = build_network(settings, len(classes))
    preprocessing = resolve_preprocessing(network.backbone, image_size=image_size, resize_mode="squash")
    save_checkpoint(run / "best.pt", network=network, settings=settings, classes=classes, preprocessing=preprocessing,
                    epoch=1, stage="head", metrics={"val_accuracy": 0.0})
    if val_images is not None:
        (run / "val_samples.json").write_text(json.dumps([{"path": str(p), "label": p.parent.name} for p in val_images]))
    return run
