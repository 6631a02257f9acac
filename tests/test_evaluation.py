"""The evaluation report from hand-made probabilities, its files, and evaluate_model on real photos."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from visiontrain.cli.main import app
from visiontrain.data.errors import DataError
from visiontrain.evaluation.evaluate import evaluate_model
from visiontrain.evaluation.report import build_report, write_report

from model_checkpoints import write_random_head_checkpoint

PROBABILITIES = np.array(
    [
        [0.9, 0.05, 0.05],  # cat -> cat
        [0.2, 0.7, 0.1],  # dog -> dog
        [0.6, 0.3, 0.1],  # dog -> cat (60%)
        [0.1, 0.1, 0.8],  # bird -> bird
        [0.3, 0.4, 0.3],  # cat -> dog (40%)
        [0.05, 0.9, 0.05],  # bird -> dog (90%)
    ]
)
Y_TRUE = [0, 1, 1, 2, 0, 2]
CLASSES = ["cat", "dog", "bird"]


def test_report_counts_and_metrics_match_a_hand_computation():
    report = build_report(CLASSES, Y_TRUE, PROBABILITIES, [f"img{i}.jpg" for i in range(6)])
    assert report["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]  # rows true, columns predicted
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["num_images"] == 6 and report["classes"] == CLASSES
    expected_loss = -np.mean([math.log(PROBABILITIES[i, y]) for i, y in enumerate(Y_TRUE)])
    assert report["loss"] == pytest.approx(expected_loss, abs=1e-5)
    by_class = {row["class"]: row for row in report["per_class"]}
    # dog: predicted for images 1, 4 and 5, of which one is a dog; two dogs, one found.
    assert by_class["dog"]["precision"] == pytest.approx(1 / 3, abs=1e-5)
    assert by_class["dog"]["recall"] == pytest.approx(1 / 2)
    assert by_class["dog"]["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), abs=1e-5)
    assert [row["precision"] for row in report["per_class"]] == pytest.approx([1 / 2, 1 / 3, 1], abs=1e-5)
    assert [row["support"] for row in report["per_class"]] == [2, 2, 2]
    macro_recall = np.mean([row["recall"] for row in report["per_class"]])
    assert report["macro"]["recall"] == pytest.approx(macro_recall, abs=1e-5)
    # Most confident mistake first, with every class's probability.
    mistakes = report["misclassified"]
    assert [(m["path"], m["true"], m["predicted"]) for m in mistakes] == [
        ("img5.jpg", "bird", "dog"), ("img2.jpg", "dog", "cat"), ("img4.jpg", "cat", "dog")
    ]
    assert mistakes[0]["probability"] == pytest.approx(0.9)
    assert mistakes[1]["probabilities"] == pytest.approx({"cat": 0.6, "dog": 0.3, "bird": 0.1})
    # Every image's prediction, in input order, right answers included.
    predictions = report["predictions"]
    assert [(p["path"], p["true"], p["predicted"]) for p in predictions] == [
        ("img0.jpg", "cat", "cat"), ("img1.jpg", "dog", "dog"), ("img2.jpg", "dog", "cat"),
        ("img3.jpg", "bird", "bird"), ("img4.jpg", "cat", "dog"), ("img5.jpg", "bird", "dog"),
    ]
    assert [p["probability"] for p in predictions] == pytest.approx([0.9, 0.7, 0.6, 0.8, 0.4, 0.9])
    assert set(predictions[0]) == {"path", "true", "predicted", "probability"}
    # Each confusion-matrix cell counts exactly the predictions with its (true, predicted) pair.
    for row, true in enumerate(CLASSES):
        for column, predicted in enumerate(CLASSES):
            in_cell = [p for p in predictions if (p["true"], p["predicted"]) == (true, predicted)]
            assert len(in_cell) == report["confusion_matrix"][row][column]


def test_a_class_never_predicted_has_zero_precision_not_nan():
    probabilities = torch.tensor([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    report = build_report(["a", "b"], torch.tensor([0, 1, 1]), probabilities, ["x", "y", "z"])
    assert report["per_class"][1] == {"class": "b", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    json.dumps(report, allow_nan=False)


def test_bad_report_input_is_refused_with_the_reason():
    paths = ["a", "b"]
    with pytest.raises(ValueError, match="apply softmax"):
        build_report(["x", "y"], [0, 1], np.array([[2.0, -1.0], [0.5, 3.0]]), paths)
    with pytest.raises(ValueError, match="shape"):
        build_report(["x", "y", "z"], [0, 1], np.array([[0.5, 0.5], [0.5, 0.5]]), paths)
    with pytest.raises(ValueError, match="outside 0..1"):
        build_report(["x", "y"], [0, 2], np.array([[0.5, 0.5], [0.5, 0.5]]), paths)
    with pytest.raises(ValueError, match="paths"):
        build_report(["x", "y"], [0, 1], np.array([[0.5, 0.5], [0.5, 0.5]]), ["a"])
    with pytest.raises(ValueError, match="distinct"):
        build_report(["x", "x"], [0, 1], np.array([[0.5, 0.5], [0.5, 0.5]]), paths)


@pytest.mark.parametrize("num_classes", [2, 40])
def test_write_report_writes_the_json_and_a_png_picture(tmp_path, num_classes):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, num_classes, 120)
    probabilities = rng.dirichlet(np.ones(num_classes), 120)
    classes = [f"class {i} with a fairly long name" for i in range(num_classes)]
    report = build_report(classes, y_true, probabilities, [f"{i}.jpg" for i in range(120)])
    write_report(report, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == report
    with Image.open(tmp_path / "out" / "confusion_matrix.png") as picture:
        assert picture.format == "PNG"
        # Big enough to read: a cell per class at roughly 40 px or more.
        assert min(picture.size) >= max(400, 40 * num_classes)
    assert not list((tmp_path / "out").glob(".*tmp"))


# --- evaluate_model on real photos


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ants_bees_small):
    """A real checkpoint (pretrained lite0 backbone, seeded random head) and its validation list."""
    val = sorted((ants_bees_small / "val").glob("*/*.jpg"))
    return write_random_head_checkpoint(tmp_path_factory.mktemp("evaluate_run"), ["ants", "bees"], val_images=val)


def test_evaluate_on_the_runs_validation_set_agrees_with_the_network_run_by_hand(run_dir, ants_bees_small):
    """evaluate_model predicts through the Predictor; the reference here does not: the checkpoint's
    network on images decoded and transformed by hand."""
    from visiontrain.data.images import open_image
    from visiontrain.data.transforms import model_input
    from visiontrain.models.checkpoint import load_checkpoint

    report = evaluate_model(run_dir)
    val = sorted((ants_bees_small / "val").glob("*/*.jpg"))
    assert report["num_images"] == len(val) == sum(map(sum, report["confusion_matrix"]))
    assert report["rejected"] == []
    loaded = load_checkpoint(run_dir)
    transform = model_input(loaded.preprocessing)
    batch = torch.stack([transform(open_image(p, draft_size=loaded.preprocessing.image_size)) for p in val])
    with torch.inference_mode():
        probabilities = torch.softmax(loaded.network(batch), dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    truth = np.array([0 if p.parent.name == "ants" else 1 for p in val])
    assert [p["probability"] for p in report["predictions"]] == pytest.approx(probabilities.max(axis=1).tolist(), abs=1e-5)
    matrix = [[int(((truth == t) & (predicted == q)).sum()) for q in (0, 1)] for t in (0, 1)]
    assert report["confusion_matrix"] == matrix
    assert report["accuracy"] == pytest.approx(float((predicted == truth).mean()), abs=1e-6)
    assert len(report["misclassified"]) == int((predicted != truth).sum())
    assert [p["path"] for p in report["predictions"]] == [str(p) for p in val]
    assert [p["predicted"] for p in report["predictions"]] == [["ants", "bees"][i] for i in predicted]
    assert json.loads((run_dir / "evaluation.json").read_text()) == report
    assert (run_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_on_a_folder_uses_its_val_part_and_reports_unreadable_files(run_dir, ants_bees_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ants_bees_small, data)
    broken = data / "val" / "ants" / "broken.jpg"
    broken.write_bytes((data / "val" / "bees").iterdir().__next__().read_bytes()[:1500])
    out = tmp_path / "report"
    report = evaluate_model(run_dir / "best.pt", data, out)
    assert report["num_images"] == 12  # the val part (6 + 6), not train
    assert report["rejected"] == [{"path": str(broken), "reason": report["rejected"][0]["reason"]}]
    assert "truncated" in report["rejected"][0]["reason"]
    assert (out / "evaluation.json").is_file() and (out / "confusion_matrix.png").is_file()


def test_evaluate_on_a_held_out_only_csv_uses_its_test_rows(run_dir, ants_bees_small, tmp_path):
    """A file listing only test images (what a dataset keeps for judging a model) needs no training rows."""
    rows = ["path,label,split"] + [f"{p},{p.parent.name},test" for p in sorted((ants_bees_small / "val").glob("*/*.jpg"))[:5]]
    (tmp_path / "held_out.csv").write_text("\n".join(rows) + "\n")
    report = evaluate_model(run_dir, tmp_path / "held_out.csv", tmp_path / "out")
    assert report["num_images"] == 5


def test_labels_the_model_does_not_know_are_refused(run_dir, ants_bees_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ants_bees_small / "val", data)
    shutil.copytree(data / "bees", data / "wasps")
    with pytest.raises(DataError, match="not trained on: wasps"):
        evaluate_model(run_dir, data, tmp_path / "out")


def test_a_run_without_a_validation_record_asks_for_data(run_dir, tmp_path):
    shutil.copy(run_dir / "best.pt", tmp_path / "best.pt")
    with pytest.raises(DataError, match="val_samples.json"):
        evaluate_model(tmp_path)


def test_cli_evaluate_prints_the_report_and_fails_cleanly(run_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(run_dir), "--out", str(tmp_path / "a")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "Per class" in result.output and "Confusion matrix" in result.output
    as_json = runner.invoke(app, ["evaluate", str(run_dir), "--json", "--out", str(tmp_path / "b")])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["num_images"] == 12
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no checkpoint" in missing.output and "Traceback" not in missing.output
    no_data = runner.invoke(app, ["evaluate", str(run_dir), str(tmp_path / "no-data")])
    assert no_data.exit_code == 2 and "data not found" in no_data.output


@pytest.mark.slow
def test_evaluating_a_trained_run_reproduces_the_report_written_at_the_end_of_training(ants_bees_small, tmp_path):
    """The runner reports from cached features; evaluate decodes the photos again: same numbers."""
    from visiontrain.engine import train

    run = tmp_path / "run"
    settings = {"image_size": 96, "epochs": 2, "augmented_copies": 0, "batch_size": 8, "early_stopping": False}
    train(settings, ants_bees_small, run)
    written = json.loads((run / "evaluation.json").read_text())
    again = evaluate_model(run, out_dir=tmp_path / "again")
    assert again["confusion_matrix"] == written["confusion_matrix"]
    assert again["loss"] == pytest.approx(written["loss"], abs=1e-4)
    assert [m["path"] for m in again["misclassified"]] == [m["path"] for m in written["misclassified"]]
