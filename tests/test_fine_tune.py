"""Fine-tuning: each image decoded once for the stage, the frozen front run once per fixed input,
batch norm as the settings say, and the stage's checkpoint kept only when it beats the head's."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from visiontrain.engine import train
from visiontrain.models.classifier import build_network
from visiontrain.settings import TrainingSettings
from visiontrain.tasks import get_task
from visiontrain.training import features as features_module
from visiontrain.training import fine_tune as fine_tune_module
from visiontrain.training.module import TransferModule
from visiontrain.training.optim import FINE_TUNE_FLOOR, fine_tune_factor
from visiontrain.training.runner import _Run

FAST = dict(epochs=2, batch_size=8, fine_tune=True, fine_tune_epochs=2, retrained_layers=3)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_the_split_backbone_computes_what_the_backbone_computes(backbone: str) -> None:
    network = build_network(TrainingSettings(backbone=backbone, pretrained=backbone != "resnet18"), 2).eval()
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    for blocks in (1, 2, 5):
        front, tail = network.split_backbone(blocks)
        with torch.inference_mode():
            assert torch.allclose(tail(front(images)), network.backbone(images), atol=1e-5), blocks
        # The tail's modules are the backbone's own: training them trains the network.
        tail_parameters = {id(p) for p in tail.parameters()}
        assert tail_parameters <= {id(p) for p in network.backbone.parameters()}
        unfrozen = {id(p) for block in network.unfreeze_last(blocks) for p in block.parameters()}
        assert unfrozen <= tail_parameters


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter, list[str]]:
    """Every image decode, with the stage it happened in (from the run's own stage events)."""
    decodes: Counter = Counter()
    stage = ["none"]
    for module in (features_module, fine_tune_module):
        real = module.open_image

        def counting(path, *args, _real=real, **kwargs):
            decodes[(stage[0], Path(path).name)] += 1
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(module, "open_image", counting)
    return decodes, stage


def _front_rows(monkeypatch: pytest.MonkeyPatch, stage: list[str]) -> Counter:
    """How many inputs went through fine-tuning's frozen front (ONNX or PyTorch runner alike), per stage."""
    rows: Counter = Counter()
    real = fine_tune_module.make_runner

    def counting_runner(*args, **kwargs):
        runner = real(*args, **kwargs)
        if not kwargs.get("name", "").startswith("front"):
            return runner

        class Counted:
            batch_size = runner.batch_size

            def __call__(self, images):
                rows[stage[0]] += len(images)
                return runner(images)

        return Counted()

    monkeypatch.setattr(fine_tune_module, "make_runner", counting_runner)
    return rows


@pytest.mark.parametrize("fresh", [False, True], ids=["fixed-copies", "fresh-augmentation"])
def test_fine_tuning_decodes_each_image_once_and_runs_the_front_once_per_fixed_input(
        ants_bees_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: bool) -> None:
    monkeypatch.setenv("VISIONTRAIN_CACHE_DIR", str(tmp_path / "cache"))  # cold: this test's own feature cache
    train_names = {p.name for p in (ants_bees_small / "train").rglob("*.jpg")}
    val_names = {p.name for p in (ants_bees_small / "val").rglob("*.jpg")}
    settings = {**FAST, "fine_tune_epochs": 3, "augmented_copies": 1, "fine_tune_fresh_augmentation": fresh,
                "fine_tune_learning_rate": 1e-4}
    for run in ("cold", "warm"):
        decodes, stage = _count_decodes(monkeypatch)
        front_rows = _front_rows(monkeypatch, stage)

        def follow(event: dict) -> None:
            if event["type"] == "stage":
                stage[0] = event["stage"] if event["status"] == "started" else "between"

        summary = train(settings, ants_bees_small / "train", tmp_path / run, validation_data=ants_bees_small / "val",
                        callback=follow)
        per_stage = {where: {name: n for (w, name), n in decodes.items() if w == where} for where in ("features", "fine_tune")}
        if run == "cold":
            # The features pass decodes each image once and keeps the front's outputs on the way: fine-tuning
            # decodes only what it needs apart (fresh augmentation's small training images).
            assert per_stage["features"] == {name: 1 for name in train_names | val_names}
            assert per_stage["fine_tune"] == ({name: 1 for name in train_names} if fresh else {})
        else:
            # Features come from the cache; fine-tuning decodes every image once, for three epochs.
            assert per_stage["features"] == {}
            assert per_stage["fine_tune"] == {name: 1 for name in train_names | val_names}
        assert summary["counts"]["fine_tune_decoded_images"] == sum(per_stage["fine_tune"].values())
        # The evaluation of a fine-tuned model reuses the validation images' front outputs: no decode.
        assert not [name for (where, name) in decodes if where == "evaluation" and name in val_names]
        # The front ran once per validation image and, with fixed copies, once per training variant, in
        # whichever stage computed it; with fresh augmentation it runs inside the training steps instead.
        assert sum(front_rows.values()) == len(val_names) + (0 if fresh else 2 * len(train_names))
        assert summary["epochs_run"]["fine_tune"] == 3
        monkeypatch.undo()
        monkeypatch.setenv("VISIONTRAIN_CACHE_DIR", str(tmp_path / "cache"))


def _bn_layers(blocks: list[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for block in blocks for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("mode", ["frozen", "train"])
def test_batch_norm_in_the_retrained_blocks_is_what_the_settings_say(mode: str) -> None:
    settings = TrainingSettings(fine_tune=True, retrained_layers=3, fine_tune_batch_norm=mode)
    network = build_network(settings, 2)
    front, tail = network.split_backbone(3)
    task = get_task("classification")
    module = TransferModule(network, settings, task=task, loss=nn.CrossEntropyLoss(), num_classes=2, stage="fine_tune",
                            learning_rate=1e-4, tail=tail)
    module.on_train_epoch_start()
    retrained = _bn_layers(module.trainable[1:])
    frozen = [m for m in _bn_layers([front])]
    assert retrained and frozen
    assert all(m.training == (mode == "train") for m in retrained)
    assert not any(m.training for m in frozen)  # the frozen front never re-estimates anything
    # Scale and shift learn in both modes (they are trainable weights of the retrained blocks).
    assert all(m.weight.requires_grad for m in retrained) and not any(m.weight.requires_grad for m in frozen)

    before = [m.running_mean.clone() for m in retrained]
    inputs = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        module(front(inputs))
    changed = [not torch.equal(b, m.running_mean) for b, m in zip(before, retrained)]
    assert all(changed) if mode == "train" else not any(changed)


def test_the_fine_tuning_rate_warms_up_then_decays_along_a_cosine() -> None:
    total = 100
    factors = [fine_tune_factor(step, total) for step in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # a tenth of the stage warming up
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))  # then never rises
    assert factors[-1] == pytest.approx(FINE_TUNE_FLOOR, abs=2e-3) and min(factors) >= FINE_TUNE_FLOOR


def _epoch(stage: str, epoch: int, accuracy: float) -> dict:
    return {"stage": stage, "epoch": epoch, "val_accuracy": accuracy, "val_loss": 1 - accuracy}


@pytest.mark.parametrize(("fine_tuned", "kept"), [(0.90, "head"), (0.80, "head"), (0.91, "fine_tune")])
def test_the_fine_tuned_checkpoint_is_kept_only_when_it_beats_the_head(fine_tuned: float, kept: str, tmp_path: Path) -> None:
    run = _Run.__new__(_Run)
    run.task = get_task("classification")
    run.stage_epochs = {"head": [_epoch("head", 1, 0.85), _epoch("head", 2, 0.90)],
                        "fine_tune": [_epoch("fine_tune", 1, fine_tuned - 0.05), _epoch("fine_tune", 2, fine_tuned)]}
    assert run.kept("head.ckpt", "fine_tune.ckpt") == (kept, f"{kept}.ckpt")


def test_a_fine_tuning_stage_that_does_not_beat_the_head_leaves_the_head_model(ants_bees_small: Path, tmp_path: Path) -> None:
    # A rate too small to move anything: the stage's epochs tie with the head's best, so the head is kept.
    settings = {**FAST, "fine_tune_learning_rate": 1e-9}
    summary = train(settings, ants_bees_small / "train", tmp_path / "run", validation_data=ants_bees_small / "val")
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    head = max(e["val_accuracy"] for e in epochs if e.get("type") == "epoch" and e["stage"] == "head")
    tuned = [e["val_accuracy"] for e in epochs if e.get("type") == "epoch" and e["stage"] == "fine_tune"]
    assert tuned and max(tuned) == pytest.approx(head, abs=1e-6)  # the kept front outputs reproduce the head exactly
    assert summary["best_stage"] == "head"
    checkpoint = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)
    assert checkpoint["stage"] == "head"


def test_balance_concepts_weights_a_classifier_by_class_rarity_and_label_smoothing_reaches_the_loss() -> None:
    task = get_task("classification")
    targets = torch.tensor([0, 0, 0, 1])
    weighted = task.training_loss(TrainingSettings(balance_concepts=True), targets)
    # Three images of class 0 and one of class 1: each class weighs 1 / its share, normalised.
    assert torch.allclose(weighted.weight, torch.tensor([4 / 6, 4 / 2]))
    plain = task.training_loss(TrainingSettings(), targets)
    assert plain.weight is None and plain.label_smoothing == 0.0
    assert task.training_loss(TrainingSettings(label_smoothing=0.1), targets).label_smoothing == 0.1
