"""The task layer: the registry, tagging's metrics and thresholds on hand-worked cases, "without
concept" images as negatives, and every registered task training, predicting and exporting."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from visiontrain.data.dataset import DatasetSpec, Sample
from visiontrain.data.errors import DataError
from visiontrain.evaluation.tagging import average_precisions, build_tagging_report, fit_thresholds
from visiontrain.tasks import get_task, task_names
from visiontrain.tasks.tagging import positive_weights

FAST = {"image_size": 64, "epochs": 2, "augmented_copies": 0, "batch_size": 8, "early_stopping": False}


def test_registry_names_every_task_and_refuses_others() -> None:
    assert task_names() == ["classification", "tagging", "detection"]
    assert get_task("tagging").monitor == "val_map" and get_task("classification").monitor == "val_accuracy"
    assert get_task("detection").monitor == "val_map50" and get_task("detection").model == "detector"
    with pytest.raises(ValueError, match="unknown task 'boxes'.*classification, tagging, detection"):
        get_task("boxes")


# --- tagging metrics, hand-worked


def test_map_is_one_for_a_perfect_ranking() -> None:
    probs = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6], [0.3, 0.1]], dtype=torch.float64)
    truth = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]])
    per_concept, mean = average_precisions(probs, truth)
    assert per_concept == [1.0, 1.0] and mean == 1.0


def test_map_of_a_constructed_ranking() -> None:
    # Concept 0 ranks positive, negative, positive: AP = (1/1 + 2/3) / 2 = 0.8333.
    # Concept 1 ranks its only positive second: AP = 1/2. The mean is 0.6667.
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.9], [0.7, 0.8]], dtype=torch.float64)
    truth = torch.tensor([[1, 0], [0, 0], [1, 1]])
    per_concept, mean = average_precisions(probs, truth)
    assert per_concept == pytest.approx([5 / 6, 0.5], abs=1e-6)
    assert mean == pytest.approx((5 / 6 + 0.5) / 2, abs=1e-6)


def test_a_concept_without_positives_has_no_ap_and_is_left_out_of_the_mean() -> None:
    probs = torch.tensor([[0.9, 0.4], [0.2, 0.3]], dtype=torch.float64)
    truth = torch.tensor([[1, 0], [0, 0]])
    per_concept, mean = average_precisions(probs, truth)
    assert per_concept == [1.0, None] and mean == 1.0


def test_thresholds_sit_at_the_best_f1() -> None:
    # Scores of one concept, positives marked: calling the top three positive gives P=2/3, R=1
    # (F1 0.8); the top one, P=1, R=1/2 (F1 0.667); all five, P=2/5 (F1 0.571). The best cut lies
    # between 0.6 (third) and 0.4 (fourth): the threshold is their midpoint.
    scores = torch.tensor([[0.9], [0.7], [0.6], [0.4], [0.2]], dtype=torch.float64)
    truth = torch.tensor([[1], [0], [1], [0], [0]])
    (threshold,) = fit_thresholds(scores, truth)
    assert threshold == pytest.approx(0.5)
    decided = (scores[:, 0] >= threshold).long()
    assert decided.tolist() == [1, 1, 1, 0, 0]


def test_thresholds_keep_half_for_a_concept_with_no_positive() -> None:
    assert fit_thresholds(torch.tensor([[0.9, 0.1]], dtype=torch.float64), torch.tensor([[0, 1]])) == [0.5, pytest.approx(0.05)]


def test_tagging_report_counts_errors_and_both_accuracies() -> None:
    classes = ["cat", "dog"]
    probs = np.array([[0.9, 0.2], [0.6, 0.8], [0.1, 0.7], [0.4, 0.1]])
    truth = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])
    report = build_tagging_report(classes, truth, probs, ["a", "b", "c", "d"], thresholds={"cat": 0.5, "dog": 0.5})
    cat = report["per_concept"][0]
    # cat at 0.5: a right (tp), b wrong (fp), d missed (fn): precision 1/2, recall 1/2.
    assert (cat["precision"], cat["recall"], cat["support"]) == (0.5, 0.5, 2)
    assert report["errors"]["cat"] == {
        "false_positives": [{"path": "b", "probability": 0.6}],
        "false_negatives": [{"path": "d", "probability": 0.4}],
    }
    # 8 decisions, 6 right; images a and c are entirely right (exact match 2/4).
    assert report["accuracy"] == {"per_concept": 0.75, "exact_match": 0.5}
    assert report["predictions"][1] == {"path": "b", "true": ["dog"], "predicted": ["cat", "dog"], "probabilities": {"cat": 0.6, "dog": 0.8}}
    json.dumps(report)  # plain JSON, no NaN


def test_positive_weights_favour_rare_concepts_within_bounds() -> None:
    targets = torch.zeros(100, 3)
    targets[:, 0] = 1  # on every image
    targets[:10, 1] = 1  # 1 in 10: 9 negatives per positive
    targets[0, 2] = 1  # 1 in 100: 99 negatives per positive, capped
    assert positive_weights(targets).tolist() == [1.0, 9.0, 50.0]


# --- data rules of the tasks


def test_without_concept_images_are_all_negative_targets() -> None:
    task = get_task("tagging")
    samples = [Sample(Path("a.jpg"), ("cat",)), Sample(Path("b.jpg"), ()), Sample(Path("c.jpg"), ("dog", "cat"))]
    assert task.targets(samples, ["cat", "dog"]).tolist() == [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]


def test_classification_refuses_an_image_with_two_labels() -> None:
    with pytest.raises(DataError, match="has 2 labels.*tagging"):
        get_task("classification").check_samples(["a", "b"], [Sample(Path("x.jpg"), ("a", "b"))], "the train set")


def test_tagging_refuses_a_concept_without_training_images() -> None:
    task = get_task("tagging")
    train = [Sample(Path("a.jpg"), ("cat",))]
    with pytest.raises(DataError, match="'dog' have no training image"):
        task.check_split(["cat", "dog"], train, [Sample(Path("b.jpg"), ("dog",))])


# --- every task end to end on real photos


@pytest.fixture(scope="module")
def tagged_photos(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSpec:
    """24 coco128 photos with their tags limited to person and car, and some "without concept"."""
    root = tmp_path_factory.mktemp("tagged")
    with open(datasets_dir / "coco128_coco" / "tags.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:24]
    samples = []
    for row in rows:
        source = datasets_dir / "coco128_coco" / row["image"]
        shutil.copy2(source, root / source.name)
        tags = tuple(t for t in row["tags"].split(";") if t in ("person", "car"))
        samples.append(Sample(root / source.name, tags))
    assert any(not s.labels for s in samples) and sum("car" in s.labels for s in samples) >= 3
    return DatasetSpec(classes=["car", "person"], train=samples, task="tagging", source="coco128 tags")


@pytest.fixture(scope="module")
def classified_photos(ants_bees_small: Path) -> DatasetSpec:
    from visiontrain.data.sources import load_dataset

    return load_dataset(ants_bees_small)


@pytest.mark.slow
# The head tasks; the detector trains, predicts and exports in tests/test_detection.py and test_detection_predict.py.
@pytest.mark.parametrize("task_name", [name for name in task_names() if get_task(name).model == "head"])
def test_every_task_trains_predicts_and_exports(task_name, request, tmp_path) -> None:
    from visiontrain import engine
    from visiontrain.models.checkpoint import load_checkpoint
    from visiontrain.predictor import Predictor

    spec = request.getfixturevalue({"classification": "classified_photos", "tagging": "tagged_photos"}[task_name])
    task = get_task(task_name)
    events: list[dict] = []
    # Both stages: the head on cached features, then fine-tuning on images (the task's targets either way).
    summary = engine.train({**FAST, "fine_tune": True, "fine_tune_epochs": 1}, spec, tmp_path, callback=events.append)
    assert summary["epochs_run"] == {"head": 2, "fine_tune": 1}
    assert summary["status"] == "succeeded" and summary["task"] == task_name == json.loads((tmp_path / "summary.json").read_text())["task"]
    assert summary["monitor"] == task.monitor and summary["headline"] == {"name": task.monitor, "value": summary["best_metrics"][task.monitor]}
    epochs = [e for e in events if e["type"] == "epoch"]
    assert len(epochs) == 3 and all(e["monitor"] == task.monitor and 0.0 <= e[task.monitor] <= 1.0 for e in epochs)
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["task"] == task_name and report["num_images"] == summary["counts"]["val_images"]
    for picture in task.pictures:
        assert (tmp_path / picture).stat().st_size > 1000
    assert load_checkpoint(tmp_path).task == task_name

    image = spec.train[0].path
    torch_result = Predictor.load(tmp_path, device="cpu").predict([image], top_k=2)[0]
    onnx_result = engine.predict(tmp_path, [image], top_k=2, backend="onnx")[0]
    assert [p["label"] for p in torch_result["predictions"]] == [p["label"] for p in onnx_result["predictions"]]
    for a, b in zip(torch_result["predictions"], onnx_result["predictions"]):
        assert abs(a["probability"] - b["probability"]) < 1e-4
    if task_name == "tagging":
        # Every concept, with the threshold fitted on validation and stored in the checkpoint.
        assert len(torch_result["predictions"]) == len(spec.classes)
        thresholds = summary["task_state"]["thresholds"]
        for p in torch_result["predictions"]:
            assert p["threshold"] == thresholds[p["label"]] and p["on"] == (p["probability"] >= p["threshold"])
    else:
        assert len(torch_result["predictions"]) == 2
        assert math.isclose(sum(p["probability"] for p in Predictor.load(tmp_path).predict([image], top_k=9)[0]["predictions"]), 1, rel_tol=1e-5)


@pytest.mark.slow
def test_tagging_weights_move_and_beat_chance(tagged_photos, tmp_path) -> None:
    """Trained longer, the head ranks held-out images better than chance, and its evaluation alone
    (``visiontrain evaluate``) reproduces the report written at the end of training."""
    from visiontrain import engine

    summary = engine.train({**FAST, "epochs": 15, "learning_rate": 3e-3}, tagged_photos, tmp_path)
    written = json.loads((tmp_path / "evaluation.json").read_text())
    again = engine.evaluate(tmp_path)
    assert again["map"] == pytest.approx(written["map"], abs=1e-5)
    assert again["thresholds"] == written["thresholds"] == summary["task_state"]["thresholds"]
    # Chance AP is the share of positives (person: about half the images, car: few); a working head is above it.
    val_truth = torch.tensor([[p in r["true"] for p in ["car", "person"]] for r in written["predictions"]], dtype=torch.float64)
    assert written["map"] > float(val_truth.mean(dim=0).mean()) + 0.1


@pytest.mark.slow
def test_a_test_split_is_evaluated_apart_and_never_picks_the_model(tagged_photos, tmp_path) -> None:  # noqa: D103
    from visiontrain import engine

    spec = DatasetSpec(classes=tagged_photos.classes, train=tagged_photos.train[:18], val=tagged_photos.train[18:22],
                       test=tagged_photos.train[22:], task="tagging")
    summary = engine.train(FAST, spec, tmp_path)
    test_report = json.loads((tmp_path / "test" / "evaluation.json").read_text())
    assert test_report["num_images"] == 2 == summary["test"]["num_images"] == summary["counts"]["test_images"]
    assert summary["test"]["map"] == test_report["map"]
    val_paths = {r["path"] for r in json.loads((tmp_path / "evaluation.json").read_text())["predictions"]}
    assert val_paths == {str(s.path) for s in spec.val}  # validation (model choice) never saw the test images
    # The model chosen is the one chosen without any test set at all: the test images changed nothing.
    without = engine.train(FAST, DatasetSpec(classes=spec.classes, train=spec.train, val=spec.val, task="tagging"), tmp_path / "without")
    assert (without["best_epoch"], without["best_metrics"]) == (summary["best_epoch"], summary["best_metrics"])
    assert "test" not in without and not (tmp_path / "without" / "test").exists()


def test_thresholds_stay_at_or_below_the_score_they_were_chosen_at_near_one() -> None:
    # float32 sigmoids saturate: two scores 4e-8 apart. Rounding the midpoint put it above both.
    scores = torch.tensor([[0.99999994], [0.9999999], [0.2], [0.1]], dtype=torch.float32).double()
    truth = torch.tensor([[1], [0], [0], [0]])
    (threshold,) = fit_thresholds(scores, truth)
    assert float(scores[1, 0]) < threshold <= float(scores[0, 0])


@pytest.mark.slow
def test_a_run_without_validation_images_is_refused_with_the_reason(datasets_dir: Path, tmp_path: Path) -> None:
    from visiontrain import engine

    # Every image carries a concept seen on it alone: all must be learnt, none can validate.
    photos = sorted((datasets_dir / "ants_bees" / "train" / "ants").glob("*.jpg"))[:6]
    spec = DatasetSpec(classes=["ant", *(f"only{i}" for i in range(6))], task="tagging",
                       train=[Sample(p, ("ant", f"only{i}")) for i, p in enumerate(photos)])
    with pytest.raises(DataError, match="no validation images are left"):
        engine.train(FAST, spec, tmp_path)


def test_evaluating_a_model_on_a_dataset_of_another_task_is_a_clear_error(tmp_path: Path) -> None:
    from visiontrain.evaluation.evaluate import _samples_to_evaluate

    spec = DatasetSpec(classes=["cat"], train=[Sample(Path("a.jpg"), ())], task="tagging")
    with pytest.raises(DataError, match="tagging dataset but the model is a classification model"):
        _samples_to_evaluate(tmp_path, spec, "classification")


@pytest.mark.slow
def test_a_reused_run_directory_keeps_nothing_of_the_previous_run(tagged_photos, classified_photos, tmp_path) -> None:
    from visiontrain import engine

    with_test = DatasetSpec(classes=tagged_photos.classes, train=tagged_photos.train[:20], test=tagged_photos.train[20:], task="tagging")
    engine.train(FAST, with_test, tmp_path)
    assert (tmp_path / "pr_curves.png").is_file() and (tmp_path / "test" / "evaluation.json").is_file()
    engine.train(FAST, classified_photos, tmp_path)  # another task, no test set, same directory
    assert (tmp_path / "confusion_matrix.png").is_file()
    assert not (tmp_path / "pr_curves.png").exists() and not (tmp_path / "test").exists()
    assert not (tmp_path / "test_samples.json").exists()


@pytest.mark.slow
def test_training_leaves_the_callers_dataset_as_it_was(tagged_photos, tmp_path) -> None:
    from visiontrain import engine

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    spec = DatasetSpec(classes=tagged_photos.classes, train=[*tagged_photos.train, Sample(broken, ("car",))], task="tagging")
    for attempt in ("first", "second"):
        summary = engine.train(FAST, spec, tmp_path / attempt)
        assert [r["path"] for r in summary["rejected"]] == [str(broken)]  # once, not once more per run
    assert spec.rejected == []
