"""A trained detector after training: predictions with boxes through the Python API and the CLI (table,
JSON, boxes drawn on the image), the ONNX export matching PyTorch box for box, and `visiontrain
evaluate` on a dataset with boxes. One tiny detector (raccoon photos, two epochs) serves every test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from visiontrain import engine
from visiontrain.cli.main import app
from visiontrain.data.dataset import DatasetSpec
from visiontrain.data.images import open_image
from visiontrain.data.sources import load_dataset
from visiontrain.data.transforms import detection_input
from visiontrain.export import (
    BOX_TOLERANCE,
    META_SCORE_THRESHOLD,
    ONNX_FILE,
    PARITY_TOLERANCE,
    _read_metadata,
    detection_parity,
    match_detections,
    nms_candidates,
    read_onnx_metadata,
)
from visiontrain.models.checkpoint import load_checkpoint
from visiontrain.predictor import Predictor, concept_colour

pytestmark = pytest.mark.slow  # trains a detector once (a minute or two on a CPU)

runner = CliRunner()
# Real photos of several sizes and shapes; raccoon-106 (187 x 269) is the size torchvision's traced
# resize made 383 rows instead of PyTorch's 384 (the export computes it as PyTorch does).
PROBES = ("raccoon-1.jpg", "raccoon-10.jpg", "raccoon-100.jpg")
PARITY_IMAGES = ("raccoon-106.jpg", "raccoon-102.jpg", "raccoon-110.jpg", "raccoon-112.jpg", "raccoon-122.jpg",
                 "raccoon-133.jpg", "raccoon-105.jpg", "raccoon-2.jpg", "raccoon-20.jpg", "raccoon-60.jpg")


@pytest.fixture(scope="session")
def raccoon_images(datasets_dir: Path) -> Path:
    return datasets_dir / "raccoon" / "images"


@pytest.fixture(scope="session")
def detector_run(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory, raccoon_images: Path) -> Path:
    """A detector trained two epochs on 16 raccoon photos (8 validate), default image sizes. So tiny a
    model scores its boxes low, so its score threshold is then set in best.pt just under the best
    score on the probe images: each has at least one box to show, draw and compare."""
    from visiontrain.training.runner import run_training

    root = datasets_dir / "raccoon"
    spec = load_dataset(root / "train_labels.csv", validation=root / "test_labels.csv", task="detection")
    small = DatasetSpec(classes=spec.classes, train=spec.train[:16], val=spec.val[:8], task="detection")
    run = tmp_path_factory.mktemp("detector_run")
    summary = run_training({"epochs": 2, "augmented_copies": 0}, small, run)
    assert summary["status"] == "succeeded", summary
    predictor = Predictor.load(run, device="cpu")
    best = [float(found["scores"].max()) for found in predictor.detect([raccoon_images / name for name in PROBES]).found]
    payload = torch.load(run / "best.pt", weights_only=True)
    payload["task_state"]["score_threshold"] = round(min(best) - 0.01, 4)
    torch.save(payload, run / "best.pt")
    return run


@pytest.fixture(scope="session")
def probes(raccoon_images: Path) -> list[Path]:
    return [raccoon_images / name for name in PROBES]


@pytest.fixture(scope="session")
def torch_predictor(detector_run: Path) -> Predictor:
    return Predictor.load(detector_run, device="cpu")


def _threshold(run: Path) -> float:
    return float(load_checkpoint(run).task_state["score_threshold"])


# --- Python API


def test_python_predict_gives_each_image_its_boxes_in_its_pixels(detector_run: Path, probes: list[Path]) -> None:
    threshold = _threshold(detector_run)
    results = engine.predict(detector_run, probes)
    assert [r["path"] for r in results] == [str(p) for p in probes]
    for path, result in zip(probes, results):
        width, height = open_image(path).size
        assert result["error"] is None and (result["width"], result["height"]) == (width, height)
        assert result["predictions"], f"{path.name} has no box at or above {threshold}"
        scores = [p["score"] for p in result["predictions"]]
        assert scores == sorted(scores, reverse=True) and min(scores) >= threshold
        for found in result["predictions"]:
            assert found["label"] == "raccoon" and set(found) == {"label", "score", "box"}
            box = found["box"]
            assert 0 <= box["x_min"] < box["x_max"] <= width and 0 <= box["y_min"] < box["y_max"] <= height


def test_predictions_are_the_detector_run_by_hand_cut_at_the_threshold(detector_run: Path, torch_predictor: Predictor,
                                                                       probes: list[Path]) -> None:
    loaded = load_checkpoint(detector_run)
    threshold = _threshold(detector_run)
    for path, result in zip(probes, torch_predictor.predict(probes)):
        with torch.inference_mode():
            found = loaded.network([detection_input()(open_image(path))])[0]
        kept = found["scores"] >= threshold
        assert [p["score"] for p in result["predictions"]] == pytest.approx(found["scores"][kept].tolist(), abs=1e-6)
        corners = [[p["box"][k] for k in ("x_min", "y_min", "x_max", "y_max")] for p in result["predictions"]]
        np.testing.assert_allclose(corners, found["boxes"][kept].numpy(), atol=0.01)  # rounded to 2 decimals


def test_bytes_and_pil_images_get_the_same_boxes_and_a_bad_file_its_own_error(torch_predictor: Predictor, probes: list[Path],
                                                                              tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a picture")
    by_path, by_bytes, broken, by_pil = torch_predictor.predict(
        [probes[1], probes[1].read_bytes(), fake, Image.open(probes[1])]
    )
    assert by_bytes["path"] is None and by_bytes["predictions"] == by_path["predictions"]
    assert by_pil["predictions"] == by_path["predictions"]
    assert broken["predictions"] == [] and broken["error"] and broken["width"] is None
    # A detector's result is boxes: there are no class probabilities to ask for.
    with pytest.raises(TypeError, match="detect"):
        torch_predictor.score(probes[:1])


def test_the_api_response_schema_keeps_the_boxes(torch_predictor: Predictor, probes: list[Path]) -> None:
    from visiontrain.api.schemas.training import Prediction

    result = torch_predictor.predict(probes[:1])[0]
    dumped = Prediction(file="r.jpg", predictions=result["predictions"]).model_dump()
    assert dumped["predictions"] == result["predictions"]


# --- CLI


@pytest.fixture()
def short_names(probes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The probes as a.jpg, b.jpg, c.jpg in the working directory: each path fits on one line of the table."""
    names = []
    for name, path in zip("abc", probes):
        shutil.copy(path, tmp_path / f"{name}.jpg")
        names.append(f"{name}.jpg")
    monkeypatch.chdir(tmp_path)
    return names


def test_cli_table_lists_every_box_with_concept_score_and_corners(detector_run: Path, torch_predictor: Predictor,
                                                                  short_names: list[str]) -> None:
    result = runner.invoke(app, ["predict", str(detector_run), *short_names])
    assert result.exit_code == 0, result.output
    for header in ("image", "concept", "score", "x_min", "y_min", "x_max", "y_max"):
        assert header in result.output
    lines = result.output.splitlines()
    for name, predicted in zip(short_names, torch_predictor.predict(short_names)):
        assert any(name in line for line in lines)
        for found in predicted["predictions"]:
            box = found["box"]
            cells = ["raccoon", f"{found['score']:.4f}", *(f"{box[k]:.1f}" for k in ("x_min", "y_min", "x_max", "y_max"))]
            assert any(all(cell in line for cell in cells) for line in lines), (cells, result.output)


def test_cli_json_is_the_python_result(detector_run: Path, torch_predictor: Predictor, short_names: list[str]) -> None:
    result = runner.invoke(app, ["predict", str(detector_run), *short_names, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == torch_predictor.predict(short_names)


def test_cli_draws_the_boxes_on_the_image(detector_run: Path, torch_predictor: Predictor, short_names: list[str],
                                          tmp_path: Path) -> None:
    out = tmp_path / "drawn.png"
    result = runner.invoke(app, ["predict", str(detector_run), short_names[2], "--draw", str(out)])
    assert result.exit_code == 0, result.output
    original = np.asarray(open_image(short_names[2]), dtype=np.int16)
    with Image.open(out) as picture:
        assert picture.format == "PNG"
        drawn = np.asarray(picture.convert("RGB"), dtype=np.int16)
    assert drawn.shape == original.shape  # the image's own size
    colour = np.array(concept_colour(0))
    changed = np.abs(drawn - original).max(axis=2) > 0
    predictions = torch_predictor.predict([short_names[2]])[0]["predictions"]
    covered = np.zeros_like(changed)
    height, width = changed.shape

    def has_colour(rows: slice, columns: slice) -> bool:
        return bool((drawn[rows, columns] == colour).all(axis=-1).any())

    for found in predictions:
        box = found["box"]
        x0, y0, x1, y1 = (int(round(box[k])) for k in ("x_min", "y_min", "x_max", "y_max"))
        middle_y, middle_x = (y0 + y1) // 2, (x0 + x1) // 2
        # The outline runs along each side of the box, in the concept's colour.
        assert has_colour(slice(middle_y, middle_y + 1), slice(max(0, x0 - 1), x0 + 3)), ("left side", found)
        assert has_colour(slice(middle_y, middle_y + 1), slice(max(0, x1 - 3), x1 + 1)), ("right side", found)
        assert has_colour(slice(max(0, y1 - 3), y1 + 1), slice(middle_x, middle_x + 1)), ("bottom side", found)
        # The box and its label (a band of at most 70 px above it, as wide as the text, kept inside the image).
        covered[max(0, y0 - 70):y1 + 2, max(0, min(x0, width - 400) - 2):max(x1, x0 + 400) + 2] = True
    assert changed.any() and not changed[~covered].any()  # nothing drawn away from the boxes and labels
    assert changed.mean() < 0.5


def test_cli_draws_several_images_into_a_folder(detector_run: Path, short_names: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "drawn"
    result = runner.invoke(app, ["predict", str(detector_run), *short_names, "--draw", str(folder), "--onnx"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "c.png"]
    for name in short_names:
        with Image.open(folder / f"{Path(name).stem}.png") as picture:
            assert picture.size == open_image(name).size
    refused = runner.invoke(app, ["predict", str(detector_run), *short_names, "--draw", str(tmp_path / "one.png")])
    assert refused.exit_code == 2 and "give a folder" in refused.output


# --- ONNX


@pytest.fixture(scope="session")
def exported(detector_run: Path) -> tuple[Path, str]:
    result = runner.invoke(app, ["export", str(detector_run)])
    assert result.exit_code == 0, result.output
    return detector_run / ONNX_FILE, result.output


def test_export_is_checked_box_for_box_on_the_validation_images(exported: tuple[Path, str], detector_run: Path) -> None:
    from visiontrain.export import export_model

    path, output = exported
    assert "on 8 real validation images" in " ".join(output.split())
    meta = read_onnx_metadata(path)
    assert (meta.classes, meta.task, meta.preprocessing) == (["raccoon"], "detection", None)
    assert meta.task_state == load_checkpoint(detector_run).task_state
    assert json.loads(_read_metadata(path)[META_SCORE_THRESHOLD]) == _threshold(detector_run)
    again = export_model(detector_run, detector_run / "again.onnx")
    assert again.boxes_compared and again.boxes_compared > 8
    assert again.max_box_difference is not None and again.max_box_difference <= BOX_TOLERANCE
    assert again.max_difference <= PARITY_TOLERANCE


def test_onnx_runtime_finds_the_pytorch_boxes_on_real_photos_of_every_shape(exported: tuple[Path, str], torch_predictor: Predictor,
                                                                            raccoon_images: Path) -> None:
    path, _ = exported
    onnx = Predictor.load(path, backend="onnx")
    assert onnx.backend_name == "onnx" and onnx.detects
    images = [raccoon_images / name for name in PARITY_IMAGES]
    roi_heads = torch_predictor.backend.network.roi_heads
    shapes = set()
    compared = 0
    for image in images:
        tensor = torch_predictor.decode(image)
        shapes.add(tuple(tensor.shape[-2:]))
        expected, got = torch_predictor.backend(tensor), onnx.backend(tensor)
        parity = detection_parity(expected, got, nms_iou=roi_heads.nms_thresh, keep=roi_heads.detections_per_img,
                                  candidates=nms_candidates(torch_predictor.backend.network, tensor))
        assert not parity.unexplained, (image.name, parity)
        assert parity.max_box_difference <= BOX_TOLERANCE and parity.max_score_difference <= PARITY_TOLERANCE, (image.name, parity)
        assert parity.pairs >= min(len(expected["scores"]), len(got["scores"])) - 2
        compared += parity.pairs
    assert (187, 269) in shapes and len(shapes) >= 6 and compared > 50
    # What a user sees is the same too (boxes within 1 px, scores within 1e-4).
    for mine, theirs in zip(torch_predictor.predict(images), onnx.predict(images)):
        assert [p["label"] for p in mine["predictions"]] == [p["label"] for p in theirs["predictions"]]
        for a, b in zip(mine["predictions"], theirs["predictions"]):
            assert abs(a["score"] - b["score"]) <= PARITY_TOLERANCE
            assert max(abs(a["box"][k] - b["box"][k]) for k in a["box"]) <= BOX_TOLERANCE


def test_the_parity_check_would_catch_a_box_that_moved() -> None:
    boxes = np.array([[10.0, 10.0, 50.0, 60.0], [100.0, 20.0, 180.0, 90.0]], dtype=np.float32)
    expected = {"boxes": boxes, "scores": np.array([0.9, 0.4], np.float32), "labels": np.array([0, 0])}
    same = match_detections(expected, {k: v.copy() for k, v in expected.items()})
    assert same[:3] == (0.0, 0.0, 2) and same[3] == []
    moved = {**expected, "boxes": boxes + np.array([[0, 0, 0, 0], [0, 0, 1.5, 0]], np.float32)}
    _, _, pairs, unmatched = match_detections(expected, moved)
    assert pairs == 1 and [(side, i) for side, i, _ in unmatched] == [("torch", 1), ("onnx", 1)]
    rescored = {**expected, "scores": np.array([0.9, 0.4003], np.float32)}
    assert match_detections(expected, rescored)[2] == 1
    # Left over on both sides and PyTorch never proposed ONNX Runtime's box: a box that moved.
    candidates = {"boxes": boxes, "scores": expected["scores"], "labels": expected["labels"]}
    assert len(detection_parity(expected, moved, nms_iou=0.5, keep=100, candidates=candidates).unexplained) == 2
    # Two overlapping candidates of PyTorch tied in score: NMS keeps one, and float noise picks which.
    other = np.array([[10.0, 10.0, 50.0, 60.0], [104.0, 20.0, 186.0, 95.0]], dtype=np.float32)
    tied = {"boxes": other, "scores": np.array([0.9, 0.4000002], np.float32), "labels": np.array([0, 0])}
    assert len(detection_parity(expected, tied, nms_iou=0.5, keep=100).unexplained) == 2  # not without the candidates
    both = {"boxes": np.concatenate([boxes, other[1:]]), "scores": np.array([0.9, 0.4, 0.4000001], np.float32),
            "labels": np.array([0, 0, 0])}
    parity = detection_parity(expected, tied, nms_iou=0.5, keep=100, candidates=both)
    assert (parity.pairs, parity.ties, parity.unexplained) == (1, 1, [])
    # A box that only one side keeps at the detector's score floor (0.05) is noise at the cut.
    floor = {"boxes": boxes[:1], "scores": np.array([0.9], np.float32), "labels": np.array([0])}
    extra = {"boxes": boxes, "scores": np.array([0.9, 0.05002], np.float32), "labels": np.array([0, 0])}
    assert detection_parity(floor, extra, nms_iou=0.5, keep=100).unexplained == []


# --- evaluate


def test_cli_evaluates_a_detector_on_a_boxes_csv(detector_run: Path, datasets_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    data = datasets_dir / "raccoon" / "test_labels.csv"
    result = runner.invoke(app, ["evaluate", str(detector_run), str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mAP@0.5" in result.output and "raccoon" in result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["task"] == "detection" and report["num_images"] == 40 and report["num_boxes"] == 44
    assert report["score_threshold"] == _threshold(detector_run) and report["rejected"] == []
    assert 0.0 <= report["map"] <= report["map50"] <= 1.0
    for picture in ("pr_curves.png", "confusion_matrix.png", "detections.png"):
        assert (out / picture).stat().st_size > 1000


def test_evaluate_without_data_uses_the_validation_boxes(detector_run: Path, tmp_path: Path) -> None:
    report = engine.evaluate(detector_run, out_dir=tmp_path)
    listed = json.loads((detector_run / "val_samples.json").read_text())
    assert report["num_images"] == 8 and report["num_boxes"] == sum(len(row["boxes"]) for row in listed) > 0
    assert json.loads((tmp_path / "evaluation.json").read_text())["task"] == "detection"
