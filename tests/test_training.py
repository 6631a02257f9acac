"""Training runs end to end on real photos: run directory, events, best checkpoint, early stopping,
determinism, cancel, bad files, fine-tuning."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from visiontrain.engine import train
from visiontrain.models.checkpoint import load_checkpoint
from visiontrain.training.events import read_metrics

# Every test here trains (or extracts features for) a real run, except the last one: `make test-fast` skips them.
slow = pytest.mark.slow

# The head stage alone (fine-tuning, on by default, has its own tests in test_fine_tune.py).
FAST = {"image_size": 96, "epochs": 4, "augmented_copies": 1, "batch_size": 8, "early_stopping": False, "fine_tune": False}


@pytest.fixture(scope="module")
def finished_run(ants_bees_small, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    events: list[dict] = []
    summary = train(FAST, ants_bees_small, run_dir, callback=events.append)
    return run_dir, summary, events


@slow
def test_run_directory_holds_the_stable_files(finished_run):
    run_dir, summary, _ = finished_run
    for name in ("settings.yaml", "metrics.jsonl", "summary.json", "best.pt", "evaluation.json", "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "checkpoints").exists()  # intermediates removed once best.pt is written
    settings = yaml.safe_load((run_dir / "settings.yaml").read_text())
    assert settings["image_size"] == 96 and settings["optimizer"] == "adam"  # defaults filled in
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["status"] == "succeeded" == summary["status"]
    assert on_disk["classes"] == ["ants", "bees"]
    assert set(on_disk["best_metrics"]) >= {"val_accuracy", "val_loss"}
    assert on_disk["counts"]["train_images"] == 24 and on_disk["counts"]["val_images"] == 12
    assert on_disk["counts"]["train_features"] == 48  # each image plus one augmented copy
    assert {"data", "features", "head", "evaluation", "total"} <= set(on_disk["timings"])


@slow
def test_the_model_learns(finished_run):
    _, summary, _ = finished_run
    assert summary["best_metrics"]["val_accuracy"] >= 0.75  # 12 real validation photos, chance is 0.5


@slow
def test_events_reach_the_callback_and_the_metrics_file(finished_run):
    run_dir, _, events = finished_run
    on_disk = read_metrics(run_dir)
    assert [e["type"] for e in on_disk] == [e["type"] for e in events]
    epochs = [e for e in events if e["type"] == "epoch"]
    batches = [e for e in events if e["type"] == "batch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert len(batches) == 4 * 6  # 48 feature rows / batch 8
    assert all(e["loss"] > 0 and e["learning_rate"] > 0 for e in batches)
    # Warm-up: the rate rises linearly through the first epoch, then holds (on_plateau).
    first = [e["learning_rate"] for e in batches if e["epoch"] == 1]
    assert first == pytest.approx([1e-3 * (i + 1) / 6 for i in range(6)])
    assert events[-1]["type"] == "status" and events[-1]["status"] == "succeeded"


@slow
def test_best_checkpoint_is_the_first_epoch_with_top_accuracy(finished_run):
    run_dir, summary, events = finished_run
    epochs = [e for e in events if e["type"] == "epoch"]
    top = max(e["val_accuracy"] for e in epochs)
    expected = next(e for e in epochs if e["val_accuracy"] == top)
    assert summary["best_epoch"] == expected["epoch"]
    checkpoint = load_checkpoint(run_dir / "best.pt")
    assert checkpoint.epoch == expected["epoch"] and checkpoint.metrics["val_accuracy"] == pytest.approx(top)


@slow
def test_checkpoint_alone_predicts_the_validation_set(finished_run, tmp_path):
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input

    run_dir, summary, _ = finished_run
    lone = tmp_path / "model.pt"
    shutil.copy(run_dir / "best.pt", lone)  # nothing else from the run
    model = load_checkpoint(lone)
    transform = model_input(model.preprocessing)
    val = json.loads((run_dir / "val_samples.json").read_text())
    images = torch.stack([transform(open_image(v["path"], draft_size=model.preprocessing.image_size)) for v in val])
    with torch.inference_mode():
        predicted = model.network(images).argmax(1).tolist()
    accuracy = sum(model.classes[p] == v["label"] for p, v in zip(predicted, val)) / len(val)
    assert accuracy == pytest.approx(summary["best_metrics"]["val_accuracy"], abs=1e-6)


@slow
def test_same_seed_same_metrics(ants_bees_small, tmp_path):
    def epoch_metrics(run_dir, cache):
        train({**FAST, "epochs": 2}, ants_bees_small, run_dir, cache_dir=cache)
        return [{k: v for k, v in e.items() if k != "time"} for e in read_metrics(run_dir) if e["type"] in ("epoch", "batch")]

    # Separate caches: the features themselves are recomputed, not just read back.
    assert epoch_metrics(tmp_path / "a", tmp_path / "cache_a") == epoch_metrics(tmp_path / "b", tmp_path / "cache_b")


@slow
def test_early_stopping_ends_a_run_that_stopped_improving(ants_bees_small, tmp_path):
    summary = train({**FAST, "epochs": 20, "early_stopping": True, "patience": 2, "learning_rate": 1e-9, "schedule": "none"},
                    ants_bees_small, tmp_path)
    assert summary["epochs_run"]["head"] == 3  # epoch 1 sets the best, 2 and 3 bring nothing
    # And the summary says why the run ended at 3 of 20 epochs, and which epoch it kept.
    assert summary["message"] == (f"stopped early (3 of 20 head epochs): no gain in val_accuracy of at least 0.001 for 2 "
                                  f"epochs; kept head epoch {summary['best_epoch']}")


@slow
def test_cancel_keeps_the_best_checkpoint_so_far(ants_bees_small, tmp_path):
    epochs_seen = []
    summary = train({**FAST, "epochs": 20}, ants_bees_small, tmp_path,
                    callback=lambda e: epochs_seen.append(e) if e["type"] == "epoch" else None,
                    should_stop=lambda: len(epochs_seen) >= 2)
    assert summary["status"] == "cancelled"
    assert summary["epochs_run"]["head"] <= 3
    assert load_checkpoint(tmp_path).epoch in (1, 2, 3)


@slow
def test_cancel_during_feature_extraction(ants_bees_small, tmp_path):
    summary = train({**FAST, "image_size": 80}, ants_bees_small, tmp_path, should_stop=lambda: True)
    assert summary["status"] == "cancelled"
    assert not (tmp_path / "best.pt").exists()


@slow
def test_bad_files_are_reported_and_left_out(ants_bees_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ants_bees_small, data)
    good = next((data / "train" / "ants").glob("*.jpg"))
    (data / "train" / "ants" / "truncated.jpg").write_bytes(good.read_bytes()[:2000])
    (data / "train" / "bees" / "notes.jpg").write_text("not an image")
    summary = train({**FAST, "epochs": 1}, data, tmp_path / "run")
    assert summary["status"] == "succeeded"
    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == {"truncated.jpg", "notes.jpg"}
    assert summary["counts"]["train_images"] == 24 and summary["counts"]["rejected"] == 2


@slow
def test_each_stage_moves_only_the_weights_it_trains(ants_bees_small, tmp_path, monkeypatch):
    """The head stage changes the head and no backbone weight; fine-tuning changes the last retrained
    block (and may change the head) and leaves every earlier block exactly as pretrained."""
    import lightning as L

    from visiontrain.models.backbones import backbone_blocks

    def snapshot(network):  # type: ignore[no-untyped-def]
        blocks = [{n: p.detach().clone() for n, p in b.named_parameters()} for b in backbone_blocks(network.backbone)]
        head = {n: p.detach().clone() for n, p in network.head.named_parameters()}
        return blocks, head

    moved: dict[str, tuple] = {}
    original_fit = L.Trainer.fit

    def recording_fit(self, model, *args, **kwargs):  # type: ignore[no-untyped-def]
        before = snapshot(model.network)
        result = original_fit(self, model, *args, **kwargs)
        moved[model.stage] = (before, snapshot(model.network))
        return result

    monkeypatch.setattr(L.Trainer, "fit", recording_fit)
    summary = train({**FAST, "epochs": 2, "fine_tune": True, "fine_tune_epochs": 1, "retrained_layers": 1},
                    ants_bees_small, tmp_path)
    assert summary["epochs_run"] == {"head": 2, "fine_tune": 1}
    assert "fine_tune" in summary["timings"]
    assert any(e["type"] == "epoch" and e["stage"] == "fine_tune" for e in read_metrics(tmp_path))

    def changed(before: dict, after: dict) -> set[str]:
        return {name for name in before if not torch.equal(before[name], after[name])}

    (blocks_0, head_0), (blocks_1, head_1) = moved["head"]
    assert changed(head_0, head_1) == set(head_0)  # every head tensor was trained
    assert all(not changed(b0, b1) for b0, b1 in zip(blocks_0, blocks_1))  # the backbone is frozen

    (blocks_1, _), (blocks_2, _) = moved["fine_tune"]
    assert changed(blocks_1[-1], blocks_2[-1])  # the retrained block learned
    assert all(not changed(b1, b2) for b1, b2 in zip(blocks_1[:-1], blocks_2[:-1]))  # the rest did not move


def test_unfreeze_last_makes_only_those_blocks_trainable():
    from visiontrain.models.backbones import backbone_blocks
    from visiontrain.models.classifier import build_network
    from visiontrain.settings import TrainingSettings

    network = build_network(TrainingSettings(pretrained=False), 3)
    network.unfreeze_last(2)
    blocks = backbone_blocks(network.backbone)
    trainable = [any(p.requires_grad for p in b.parameters()) for b in blocks]
    assert trainable[-2:] == [True, True] and not any(trainable[:-2])
