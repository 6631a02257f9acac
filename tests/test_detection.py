"""Object detection in the engine: data with boxes, augmentation that moves them, the frozen body run once
per image variant, a non-finite loss stopped with a reason, the run directory, and the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from visiontrain.cli.main import app
from visiontrain.data.dataset import Box, DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.data.images import open_image
from visiontrain.data.sources import infer_task, load_dataset
from visiontrain.data.transforms import detection_augmenter
from visiontrain.settings import TrainingSettings, load_settings
from visiontrain.training.detection import _augmented

# Small images and no augmented copies: seconds per run on a CPU.
TINY = {"epochs": 2, "augmented_copies": 0, "shorter_side": 160, "longer_side": 256, "early_stopping": False}


@pytest.fixture(scope="module")
def raccoon(datasets_dir: Path) -> DatasetSpec:
    root = datasets_dir / "raccoon"
    return load_dataset(root / "train_labels.csv", validation=root / "test_labels.csv", task="detection")


def small(spec: DatasetSpec, train: int, val: int) -> DatasetSpec:
    return DatasetSpec(classes=spec.classes, train=spec.train[:train], val=spec.val[:val], task="detection")


def test_raccoon_lists_give_boxes_in_pixels(raccoon: DatasetSpec) -> None:
    assert (len(raccoon.train), len(raccoon.val), raccoon.classes) == (160, 40, ["raccoon"])
    assert sum(len(s.boxes) for s in raccoon.train) == 173 and sum(len(s.boxes) for s in raccoon.val) == 44
    first = next(s for s in raccoon.train if s.path.name == "raccoon-1.jpg")
    assert first.labels == ("raccoon",)
    assert first.boxes == (Box("raccoon", 81.0, 88.0, 522.0, 408.0),)


def test_the_task_is_inferred_from_a_layout_with_boxes(datasets_dir: Path) -> None:
    assert infer_task(datasets_dir / "raccoon") == "detection"  # Pascal VOC
    assert infer_task(datasets_dir / "raccoon" / "train_labels.csv") == "detection"  # boxes CSV
    assert infer_task(datasets_dir / "coco128_coco") == "detection"
    assert infer_task(datasets_dir / "coco128_yolo") == "detection"
    assert infer_task(datasets_dir / "ants_bees") == "classification"
    assert infer_task(datasets_dir / "coco128_coco" / "tags.csv") == "classification"


def test_coco_images_without_objects_are_negatives(datasets_dir: Path) -> None:
    spec = load_dataset(datasets_dir / "coco128_coco", task="detection")
    negatives = [s for s in spec.train if not s.boxes]
    assert len(negatives) == 2 and all(s.labels == () for s in negatives)
    assert sum(len(s.boxes) for s in spec.train) == 939 - 10  # crowd regions are not objects
    assert len(spec.classes) == 71


def test_detection_has_its_own_defaults_where_nothing_was_set() -> None:
    settings = load_settings(overrides={"epochs": 3, "learning_rate": 0.02}, task="detection")
    assert (settings.optimizer, settings.batch_size, settings.gradient_clip_norm, settings.skew) == ("sgd", 4, 10.0, 0.0)
    assert (settings.epochs, settings.learning_rate) == (3, 0.02)  # what the user set stays
    assert load_settings(task="classification").optimizer == "adam"
    stored = TrainingSettings(**settings.model_dump())  # a stored version: every field is set, nothing changes
    assert stored.with_task_defaults("detection") == stored
    with pytest.raises(ValueError, match="longer_side"):
        TrainingSettings(shorter_side=800, longer_side=600)


def test_a_flip_moves_the_boxes_with_the_pixels(raccoon: DatasetSpec) -> None:
    sample = raccoon.train[0]
    image = open_image(sample.path)
    width = image.width
    target = {"boxes": torch.tensor([b.corners for b in sample.boxes]), "labels": torch.zeros(len(sample.boxes), dtype=torch.int64)}
    augment = detection_augmenter(TrainingSettings(horizontal_flip=True, scale=0.0, color=0.0))
    original = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    seen = set()
    for seed in range(12):
        pixels, boxes, labels = _augmented(augment, image, target, seed=seed)
        if torch.allclose(pixels, original.flip(-1), atol=1e-6):
            x_min, y_min, x_max, y_max = target["boxes"].unbind(-1)
            assert torch.allclose(boxes, torch.stack([width - x_max, y_min, width - x_min, y_max], dim=-1))
            seen.add("flipped")
        else:
            assert torch.allclose(pixels, original, atol=1e-6) and torch.equal(boxes, target["boxes"])
            seen.add("kept")
        assert torch.equal(labels, target["labels"])
    assert seen == {"flipped", "kept"}  # seeded, and both happen


def test_zoom_clips_boxes_and_drops_those_pushed_out() -> None:
    from PIL import Image

    image = Image.new("RGB", (200, 100), "gray")
    # One box in the middle, one small box in the corner that a zoom-in pushes out of the picture.
    target = {"boxes": torch.tensor([[80.0, 30.0, 120.0, 70.0], [0.0, 0.0, 6.0, 6.0]]), "labels": torch.tensor([0, 1])}
    augment = detection_augmenter(TrainingSettings(horizontal_flip=False, scale=0.9, color=0.0))
    dropped = 0
    for seed in range(30):
        pixels, boxes, labels = _augmented(augment, image, target, seed=seed)
        assert pixels.shape == (3, 100, 200) and len(boxes) == len(labels)
        assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 200).all() and (boxes[:, 3] <= 100).all())
        assert bool(((boxes[:, 2] - boxes[:, 0]) >= 2).all() and ((boxes[:, 3] - boxes[:, 1]) >= 2).all())
        dropped += int(1 not in labels.tolist())
    assert dropped > 0


@pytest.mark.slow
def test_a_detector_trains_and_its_body_runs_once_per_image_variant(raccoon: DatasetSpec, datasets_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from visiontrain.models.checkpoint import load_checkpoint
    from visiontrain.models.detector import Detector, TimmBody
    from visiontrain.training.runner import run_training

    images_through_body = []
    forward = TimmBody.forward

    def counting(self, images):  # type: ignore[no-untyped-def]
        images_through_body.append(images.shape[0])
        return forward(self, images)

    monkeypatch.setattr(TimmBody, "forward", counting)
    spec = small(raccoon, 8, 4)
    # Ant photos marked "without concept": not trained on, a negative in validation.
    ants = sorted((datasets_dir / "ants_bees" / "val" / "ants").glob("*.jpg"))[:2]
    spec.train.append(Sample(ants[0], ()))
    spec.val.append(Sample(ants[1], ()))
    summary = run_training({**TINY, "augmented_copies": 1}, spec, tmp_path / "run")

    assert summary["status"] == "succeeded", summary.get("message")
    trained = [s for s in spec.train if s.boxes]
    # Each training image twice (original + one augmented copy), each validation image once, then never again:
    # two epochs and the evaluation all read the body's outputs.
    assert sum(images_through_body) == len(trained) * 2 + len(spec.val)
    assert summary["counts"]["train_variants"] == len(trained) * 2
    assert summary["task"] == "detection" and summary["monitor"] == "val_map50"
    assert {"val_map50", "val_map", "val_loss", "val_loss_classifier", "train_loss"} <= set(summary["best_metrics"])
    assert 0.0 <= summary["best_metrics"]["val_map"] <= summary["best_metrics"]["val_map50"] <= 1.0
    assert summary["epochs_run"]["head"] == 2
    assert any("1 training image(s) without any box are not trained on" in w for w in summary["warnings"])
    run = tmp_path / "run"
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["task"] == "detection" and evaluation["num_images"] == len(spec.val)
    assert evaluation["map50"] == pytest.approx(summary["best_metrics"]["val_map50"], abs=1e-6)  # same model, same images
    for picture in ("pr_curves.png", "confusion_matrix.png", "detections.png"):
        assert (run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (run / "body_features").exists() and not (run / "checkpoints").exists()
    records = json.loads((run / "train_samples.json").read_text())
    assert records[0]["boxes"] and set(records[0]["boxes"][0]) == {"concept", "box"}

    loaded = load_checkpoint(run)
    assert isinstance(loaded.network, Detector) and loaded.task == "detection" and loaded.preprocessing is None
    # Not set: chosen where F1 is best on the validation images, and used by the report.
    assert loaded.task_state["score_threshold_source"] == "validation F1"
    assert 0.0 < loaded.task_state["score_threshold"] < 1.0
    assert evaluation["score_threshold"] == loaded.task_state["score_threshold"]


def test_the_score_threshold_sits_where_f1_is_best() -> None:
    from visiontrain.evaluation.detection import fit_score_threshold

    true = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]), "labels": torch.tensor([0, 0])}
    # Scores 0.9 (hit), 0.8 (miss: nowhere), 0.7 (hit), 0.2 (miss). Cut after 0.7: TP 2, FP 1 -> F1 0.8, the best.
    pred = {"boxes": torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60], [20.0, 20, 30, 30], [70.0, 70, 80, 80]]),
            "scores": torch.tensor([0.9, 0.8, 0.7, 0.2]), "labels": torch.tensor([0, 0, 0, 0])}
    assert fit_score_threshold([pred], [true]) == pytest.approx(0.45)
    # A false positive on an image without concept scoring above the hits moves the cut nowhere better.
    negative = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    loud = {"boxes": torch.tensor([[0.0, 0, 5, 5]]), "scores": torch.tensor([0.95]), "labels": torch.tensor([0])}
    assert fit_score_threshold([pred, loud], [true, negative]) == pytest.approx(0.45)
    assert fit_score_threshold([negative | {"scores": torch.zeros(0)}], [negative]) == 0.5  # nothing to fit on


@pytest.mark.slow
def test_a_non_finite_loss_is_never_trained_on(raccoon: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visiontrain.models.detector import Detector
    from visiontrain.training.runner import run_training

    real = Detector.from_body_features
    steps = {"n": 0}
    spec = small(raccoon, 8, 4)

    def poisoned(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        losses, found = real(self, *args, **kwargs)
        if kwargs["losses"] and self.training:
            steps["n"] += 1
            if steps["n"] > 2:  # the first steps are fine, then the loss is NaN
                losses = {k: v * float("nan") for k, v in losses.items()}
        return losses, found

    monkeypatch.setattr(Detector, "from_body_features", poisoned)
    summary = run_training({**TINY, "epochs": 4}, spec, tmp_path / "run")
    assert summary["status"] == "succeeded" and summary["best_epoch"] == 1
    # Stopped after three NaN steps in a row (none of them taken), not trained on NaN for the other epochs.
    assert summary["epochs_run"]["head"] <= 2
    assert any("became nan for 3 steps in a row" in w and "lower learning_rate" in w for w in summary["warnings"])
    assert "loss was not finite" in summary["message"]

    steps["n"] = 10  # NaN from the first step: no usable model at all, and the reason
    with pytest.raises(DataError, match="became nan.*not one step could be trained"):
        run_training(TINY, spec, tmp_path / "run2")


def test_a_box_outside_the_concepts_is_refused(raccoon: DatasetSpec, tmp_path: Path) -> None:
    from visiontrain.training.runner import run_training

    spec = small(raccoon, 4, 2)
    spec.train[0] = Sample.with_boxes(spec.train[0].path, [Box("dog", 1, 1, 20, 20)])
    with pytest.raises(DataError, match="concept 'dog'"):
        run_training(TINY, spec, tmp_path / "run")


@pytest.mark.slow
def test_cli_trains_a_detector_from_a_boxes_csv_without_being_told_the_task(datasets_dir: Path, tmp_path: Path) -> None:
    source = datasets_dir / "raccoon"
    (tmp_path / "images").mkdir()
    for name, count in (("train_labels.csv", 6), ("test_labels.csv", 3)):
        with (source / name).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        files = sorted({r["filename"] for r in rows})[:count]
        with (tmp_path / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if r["filename"] in files)
        for file in files:
            shutil.copy(source / "images" / file, tmp_path / "images" / file)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "train_labels.csv"), "--val", str(tmp_path / "test_labels.csv"),
                                      "--out", str(out), "--epochs", "1", "--shorter-side", "160", "--longer-side", "256",
                                      "--augmented-copies", "0", "--anchor-sizes", "16", "--anchor-sizes", "32",
                                      "--anchor-sizes", "64", "--anchor-sizes", "128", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "detection" and summary["status"] == "succeeded"
    assert set(summary["best_metrics"]) >= {"val_map50", "val_map"}
    assert summary["counts"]["train_images"] == 6 and summary["counts"]["val_images"] == 3
    assert summary["detector"]["anchor_sizes"] == [16, 32, 64, 128]
    assert "val map50" in result.output


def test_detection_refuses_a_backbone_it_cannot_carry_and_names_what_works_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from visiontrain.models import backbones, detector
    from visiontrain.settings_check import settings_runnable_here

    assert settings_runnable_here(TrainingSettings(), "detection") == []  # the packaged Lite0 pyramid
    [problem] = settings_runnable_here(TrainingSettings(backbone="efficientnet_b4"), "detection")
    assert problem.field == "backbone" and "cannot carry a detector" in problem.message
    # resnet50 starts from torchvision's COCO detector: offline and not cached, the reason names the offline choices.
    monkeypatch.setattr(backbones, "hub_reachable", lambda host="", timeout=3.0: False)
    monkeypatch.setattr(detector, "_cached_coco_weights", lambda: None)
    [problem] = settings_runnable_here(TrainingSettings(backbone="resnet50"), "detection")
    assert "download.pytorch.org" in problem.message and "efficientnet_lite0" in str(problem)


@pytest.mark.slow
def test_fine_tuning_trains_the_last_body_blocks_on_fresh_images(raccoon: DatasetSpec, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from visiontrain.models.checkpoint import load_checkpoint
    from visiontrain.models.detector import Detector
    from visiontrain.training.detection import DetectionModule
    from visiontrain.training.runner import run_training

    trainable: dict[str, list[str]] = {}
    configure = DetectionModule.configure_optimizers

    def remember(self):  # type: ignore[no-untyped-def]
        names = {id(p): n for n, p in self.network.named_parameters()}
        trainable[self.stage] = [names[id(p)] for m in self.trainable for p in m.parameters() if p.requires_grad]
        return configure(self)

    monkeypatch.setattr(DetectionModule, "configure_optimizers", remember)
    settings = {**TINY, "fine_tune": True, "fine_tune_epochs": 1, "retrained_layers": 2, "fine_tune_learning_rate": 1e-3}
    summary = run_training(settings, small(raccoon, 8, 4), tmp_path / "run")
    assert summary["status"] == "succeeded" and summary["epochs_run"] == {"head": 2, "fine_tune": 1}
    assert not any(n.startswith("backbone.body.") for n in trainable["head"])  # the body frozen in the head stage
    body = {".".join(n.split(".")[4:6]) for n in trainable["fine_tune"] if n.startswith("backbone.body.body.blocks.")}
    assert body == {"5.3", "6.0"}  # the last two blocks of the body (Lite0: stage 5's last, stage 6's only)
    assert any(n.startswith("backbone.fpn.") for n in trainable["fine_tune"])
    # Frozen batch norm everywhere in the body: nothing to update statistics of, in either stage.
    network = load_checkpoint(tmp_path / "run").network
    assert isinstance(network, Detector) and not any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())
