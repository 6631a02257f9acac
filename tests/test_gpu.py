"""CUDA-only paths: the backbone under mixed precision and channels_last, data-parallel training on two
GPUs, a default training on a GPU. Skipped where there is no CUDA device (``make test`` on a CPU machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _backbone():
    from visiontrain.models.classifier import build_network
    from visiontrain.settings import TrainingSettings

    return build_network(TrainingSettings(), 2).backbone.eval()


def test_mixed_precision_channels_last_backbone_matches_float32(ants_bees_small: Path):
    """The features a GPU run computes (bf16/fp16 autocast, channels_last) are the float32 features to
    within what 16-bit arithmetic allows: the same direction (cosine > 0.995) and small relative error."""
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input
    from visiontrain.models.preprocessing import resolve_preprocessing
    from visiontrain.settings import TrainingSettings

    backbone = _backbone()
    defaults = TrainingSettings()
    preprocessing = resolve_preprocessing(backbone, image_size=defaults.image_size, resize_mode=defaults.resize_mode)
    transform = model_input(preprocessing)
    paths = sorted((ants_bees_small / "train").rglob("*.jpg"))[:16]
    images = torch.stack([transform(open_image(p, draft_size=preprocessing.image_size)) for p in paths])
    with torch.inference_mode():
        reference = backbone(images).float()  # float32 on the CPU
        gpu = backbone.cuda().to(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast("cuda", dtype=dtype):
            mixed = gpu(images.cuda().contiguous(memory_format=torch.channels_last)).float().cpu()
    cosine = torch.nn.functional.cosine_similarity(reference, mixed, dim=1)
    assert bool((cosine > 0.995).all()), cosine
    relative = (reference - mixed).norm(dim=1) / reference.norm(dim=1)
    assert float(relative.max()) < 0.05


def test_the_feature_runner_on_a_gpu_matches_the_cpu(ants_bees_small: Path):
    from visiontrain.training.backbone_runner import TorchRunner, make_runner

    backbone = _backbone()
    images = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = backbone(images).numpy()
    runner = make_runner(backbone, torch.device("cuda", 0), image_size=224, export_dir=Path("/nonexistent"), batch_size=8)
    assert isinstance(runner, TorchRunner)  # PyTorch on a GPU, never an ONNX export
    got = runner(images)
    assert got.shape == expected.shape
    # cuDNN may convolve in TF32 on recent GPUs: close in relative terms, not to the last bit.
    assert float(abs(got - expected).max()) < 2e-2 * float(abs(expected).max())


def _small_run(data: Path, run_dir: Path, **settings) -> dict:
    from visiontrain.training.runner import run_training

    return run_training({"epochs": 3, "fine_tune_epochs": 2, "seed": 0, **settings}, data / "train", run_dir,
                        validation_data=data / "val")


@pytest.mark.slow
def test_a_default_training_on_a_gpu(ants_bees_small: Path, tmp_path: Path):
    summary = _small_run(ants_bees_small, tmp_path / "run")
    assert summary["status"] == "succeeded", summary["message"]
    assert summary["device"].startswith("cuda")
    assert summary["epochs_run"]["head"] >= 1
    assert summary["best_metrics"]["val_accuracy"] >= 0.75
    assert (tmp_path / "run" / "best.pt").is_file()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_train_one_model_on_nccl(ants_bees_small: Path, tmp_path: Path):
    summary = _small_run(ants_bees_small, tmp_path / "run", devices=2, batch_size=8, fine_tune=True, retrained_layers=1)
    assert summary["status"] == "succeeded", summary["message"]
    parallel = summary["data_parallel"]
    assert (parallel["devices"], parallel["backend"], parallel["effective_batch_size"]) == (2, "nccl", 16)
    assert sum(parallel["features_computed_per_rank"]) == summary["counts"]["cache_misses"]
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len([e for e in events if e["type"] == "epoch" and e["stage"] == "head"]) == summary["epochs_run"]["head"]
    assert summary["best_metrics"]["val_accuracy"] >= 0.75
