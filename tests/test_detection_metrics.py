"""Detection metrics and report on hand-worked cases: mAP at known IoUs, false positives on images
without concept, the confusion matrix's background row and column, the pictures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from visiontrain.evaluation.detection import (
    PICTURES,
    build_detection_report,
    detection_headline,
    gallery_images,
    map_metric,
    map_values,
    write_detection_pictures,
)

CLASSES = ["cat", "dog"]
BOX = [0.0, 0.0, 100.0, 100.0]
# Shifted 20 px right: intersection 80x100, union 120x100, IoU 2/3: it passes the COCO thresholds
# 0.50, 0.55, 0.60, 0.65 and fails 0.70 ... 0.95, so AP@[.5:.95] = 4/10 and AP75 = 0.
SHIFTED = [20.0, 0.0, 120.0, 100.0]


def pred(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def truth(boxes: list[list[float]], labels: list[int]) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}


NEGATIVE = truth([], [])


def report(predictions, targets, *, score_threshold=0.5, iou_threshold=0.5, classes=CLASSES):
    paths = [f"img{n}.jpg" for n in range(len(targets))]
    return build_detection_report(classes, predictions, targets, paths, score_threshold=score_threshold, iou_threshold=iou_threshold)


def epoch_values(predictions, targets) -> dict[str, float]:
    metric = map_metric()
    metric.update(predictions, targets)
    return {k: float(v) for k, v in map_values(metric.compute()).items()}


def row(rep, concept):
    (found,) = [r for r in rep["per_class"] if r["concept"] == concept]
    return found


def test_perfect_predictions_score_one_everywhere():
    targets = [truth([BOX], [0]), truth([[10.0, 20.0, 60.0, 90.0], [200.0, 200.0, 300.0, 260.0]], [1, 0])]
    predictions = [pred(t["boxes"].tolist(), [0.9] * len(t["labels"]), t["labels"].tolist()) for t in targets]
    assert epoch_values(predictions, targets) == {"val_map50": 1.0, "val_map": 1.0, "val_map75": 1.0}
    rep = report(predictions, targets)
    assert (rep["map50"], rep["map"], rep["map75"]) == (1.0, 1.0, 1.0)
    assert rep["num_images"] == 2 and rep["num_boxes"] == 3
    assert row(rep, "cat") | {} == {
        "concept": "cat", "ap50": 1.0, "ap": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
        "support": 2, "true_positives": 2, "false_positives": 0, "false_negatives": 0,
    }
    assert rep["errors"] == []
    assert rep["confusion_matrix"] == {"labels": ["cat", "dog", "background"], "matrix": [[2, 0, 0], [0, 1, 0], [0, 0, 0]]}
    assert all(p["correct"] for image in rep["images"] for p in image["predicted"])
    assert detection_headline(rep) == {"map50": 1.0, "map": 1.0, "map75": 1.0, "precision": 1.0, "recall": 1.0}


def test_a_box_at_iou_two_thirds_passes_four_of_the_ten_coco_thresholds():
    targets = [truth([BOX], [0])]
    predictions = [pred([SHIFTED], [0.8], [0])]
    values = epoch_values(predictions, targets)
    assert values["val_map50"] == 1.0
    assert values["val_map"] == pytest.approx(0.4, abs=1e-6)
    assert values["val_map75"] == 0.0
    rep = report(predictions, targets)
    assert rep["map50"] == 1.0 and rep["map"] == pytest.approx(0.4, abs=1e-6) and rep["map75"] == 0.0
    assert row(rep, "cat")["ap50"] == 1.0 and row(rep, "cat")["ap"] == pytest.approx(0.4, abs=1e-6)
    assert row(rep, "cat")["true_positives"] == 1
    # Matched at IoU 0.5, not at 0.7: then the same box is a false positive and the true box is missed.
    strict = report(predictions, targets, iou_threshold=0.7)
    assert (row(strict, "cat")["true_positives"], row(strict, "cat")["false_positives"], row(strict, "cat")["false_negatives"]) == (0, 1, 1)
    assert strict["confusion_matrix"]["matrix"] == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert strict["map50"] == 1.0  # AP ignores the report's thresholds


def test_no_predictions_score_zero_and_nothing_to_measure_is_zero_not_minus_one():
    empty = pred([], [], [])
    targets = [truth([BOX], [0]), NEGATIVE]
    assert epoch_values([empty, empty], targets) == {"val_map50": 0.0, "val_map": 0.0, "val_map75": 0.0}
    rep = report([empty, empty], targets)
    assert (rep["map50"], rep["map"]) == (0.0, 0.0)
    cat = row(rep, "cat")
    assert (cat["ap50"], cat["precision"], cat["recall"], cat["false_negatives"]) == (0.0, 0.0, 0.0, 1)
    assert row(rep, "dog")["ap50"] is None and row(rep, "dog")["support"] == 0  # no true dog: no AP
    assert rep["macro"]["recall"] == 0.0 and rep["macro"]["ap50"] == 0.0  # over concepts with support only
    assert rep["errors"] == ["img0.jpg"]
    # Nothing at all to measure: torchmetrics says -1, the epoch metric 0; the report has no AP anywhere.
    assert epoch_values([empty], [NEGATIVE]) == {"val_map50": 0.0, "val_map": 0.0, "val_map75": 0.0}
    nothing = report([empty], [NEGATIVE])
    assert nothing["map"] == 0.0 and all(r["ap"] is None for r in nothing["per_class"])
    assert nothing["macro"] == {"precision": None, "recall": None, "f1": None, "ap50": None, "ap": None}
    assert nothing["pr_curves"] == {"cat": {"precision": [], "recall": []}, "dog": {"precision": [], "recall": []}}


def test_a_false_positive_on_an_image_without_concept_lowers_precision_and_ap():
    targets = [truth([BOX], [0]), NEGATIVE]
    # The false positive scores above the true positive: at IoU 0.5 the ranked list is FP, TP, so the
    # interpolated precision is 1/2 at every recall point and AP50 = 0.5 exactly.
    above = report([pred([BOX], [0.6], [0]), pred([[5.0, 5.0, 50.0, 50.0]], [0.9], [0])], targets)
    cat = row(above, "cat")
    assert (cat["precision"], cat["recall"], cat["true_positives"], cat["false_positives"]) == (0.5, 1.0, 1, 1)
    assert cat["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert above["map50"] == pytest.approx(0.5, abs=1e-6) and above["map50"] < 1.0
    assert above["images"][1]["false_positives"] == 1 and above["images"][1]["predicted"][0]["correct"] is False
    assert above["errors"] == ["img1.jpg"]
    assert above["confusion_matrix"]["matrix"][2] == [1, 0, 0]  # background row: the false positive
    assert set(above["pr_curves"]["cat"]["precision"]) == {0.5}
    # Ranked below the true positive, the same false positive costs no AP, but the same precision.
    below = report([pred([BOX], [0.6], [0]), pred([[5.0, 5.0, 50.0, 50.0]], [0.55], [0])], targets)
    assert below["map50"] == 1.0 and row(below, "cat")["precision"] == 0.5


def test_confusion_matrix_counts_a_wrong_concept_a_miss_and_a_false_positive():
    targets = [
        truth([BOX], [0]),                      # a cat, found as a cat
        truth([BOX], [0]),                      # a cat, found as a dog: wrong concept
        truth([[10.0, 10.0, 60.0, 60.0]], [1]),  # a dog nobody found: background column
        NEGATIVE,                               # a dog on an image without concept: background row
    ]
    predictions = [
        pred([BOX, [300.0, 300.0, 400.0, 400.0]], [0.9, 0.2], [0, 1]),  # the second is under the threshold
        pred([BOX], [0.8], [1]),
        pred([], [], []),
        pred([[0.0, 0.0, 30.0, 30.0]], [0.7], [1]),
    ]
    rep = report(predictions, targets, score_threshold=0.5)
    assert rep["confusion_matrix"]["matrix"] == [
        [1, 1, 0],  # cat: 1 right, 1 taken for a dog
        [0, 0, 1],  # dog: missed
        [0, 1, 0],  # background: a dog where there is nothing
    ]
    cat, dog = row(rep, "cat"), row(rep, "dog")
    assert (cat["support"], cat["true_positives"], cat["false_positives"], cat["false_negatives"]) == (2, 1, 0, 1)
    assert (dog["support"], dog["true_positives"], dog["false_positives"], dog["false_negatives"]) == (1, 0, 2, 1)
    assert cat["precision"] == 1.0 and cat["recall"] == 0.5 and dog["precision"] == 0.0
    assert rep["macro"]["recall"] == 0.25
    # The prediction under the threshold is in no count and not listed.
    assert [p["score"] for p in rep["images"][0]["predicted"]] == [0.9]
    assert rep["images"][1]["true"] == [{"concept": "cat", "box": BOX, "matched": False}]
    assert rep["images"][1]["predicted"][0] | {"score": None} == {"concept": "dog", "score": None, "box": BOX, "correct": False}
    assert (rep["images"][1]["false_positives"], rep["images"][1]["false_negatives"]) == (1, 1)
    assert rep["errors"] == ["img1.jpg", "img2.jpg", "img3.jpg"]


def test_greedy_matching_gives_a_true_box_to_the_most_confident_prediction_only():
    targets = [truth([BOX, [200.0, 0.0, 300.0, 100.0]], [0, 0])]
    # Two predictions on the first cat (the duplicate scores lower), one near the second.
    predictions = [pred([[2.0, 0.0, 100.0, 100.0], BOX, [210.0, 0.0, 300.0, 100.0]], [0.7, 0.9, 0.8], [0, 0, 0])]
    rep = report(predictions, targets)
    image = rep["images"][0]
    assert [(p["score"], p["correct"]) for p in image["predicted"]] == [(0.9, True), (0.8, True), (0.7, False)]
    assert (image["false_positives"], image["false_negatives"]) == (1, 0)
    assert rep["confusion_matrix"]["matrix"] == [[2, 0, 0], [0, 0, 0], [1, 0, 0]]


def test_the_report_is_plain_json_without_nan():
    targets = [truth([BOX], [0]), NEGATIVE, truth([SHIFTED], [1])]
    predictions = [pred([SHIFTED], [0.77777777], [0]), pred([BOX], [0.3], [1]), pred([], [], [])]
    rep = report(predictions, targets, score_threshold=0.25)
    text = json.dumps(rep, allow_nan=False)
    assert json.loads(text) == rep
    assert len(rep["pr_curves"]["cat"]["recall"]) == 101 and rep["pr_curves"]["dog"]["recall"][-1] == 1.0


def test_inputs_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="one entry per image"):
        build_detection_report(CLASSES, [pred([], [], [])], [NEGATIVE, NEGATIVE], ["a", "b"], score_threshold=0.5)
    with pytest.raises(ValueError, match="indexes into the 2 classes"):
        report([pred([BOX], [0.9], [2])], [NEGATIVE])
    with pytest.raises(ValueError, match="no images"):
        build_detection_report(CLASSES, [], [], [], score_threshold=0.5)


def _raccoons(datasets_dir: Path, count: int) -> list[tuple[str, list[list[float]]]]:
    rows: dict[str, list[list[float]]] = {}
    with open(datasets_dir / "raccoon" / "train_labels.csv", newline="") as handle:
        for line in csv.DictReader(handle):
            rows.setdefault(line["filename"], []).append([float(line[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
    names = sorted(rows)[:count]
    return [(str(datasets_dir / "raccoon" / "images" / name), rows[name]) for name in names]


def test_pictures_are_written_as_valid_pngs(datasets_dir: Path, tmp_path: Path):
    (first, first_boxes), (second, second_boxes), (third, _) = _raccoons(datasets_dir, 3)
    x1, y1, x2, y2 = first_boxes[0]
    targets = [truth(first_boxes, [0] * len(first_boxes)), truth(second_boxes, [0] * len(second_boxes)), NEGATIVE, NEGATIVE]
    predictions = [
        pred([first_boxes[0], [x1, y1, (x1 + x2) / 2, (y1 + y2) / 2]], [0.95, 0.6], [0] * 2),  # one right, one false positive
        pred([], [], []),                                                                 # the raccoon missed
        pred([], [], []),                                                                 # nothing on a negative: no error
        pred([[0.0, 0.0, 20.0, 20.0]], [0.4], [0]),                                       # a file that is not there
    ]
    paths = [first, second, third, str(tmp_path / "gone.jpg")]
    rep = build_detection_report(["raccoon"], predictions, targets, paths, score_threshold=0.3)
    assert rep["errors"] == [first, second, paths[3]]  # one error each: input order
    assert [image["path"] for image in gallery_images(rep)][-1] == third  # errors first, then the others
    out = tmp_path / "pictures"
    write_detection_pictures(rep, out)
    for name in PICTURES:
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.width > 300 and image.height > 200
    assert sorted(p.name for p in out.iterdir()) == sorted(PICTURES)  # no temporary file left
