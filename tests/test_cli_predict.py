"""`visiontrain predict` as a user runs it: table and JSON output, per-image errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visiontrain.cli.main import app

from model_checkpoints import write_random_head_checkpoint

CLASSES = ["ants", "bees", "wasps"]
runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real checkpoint: the pretrained lite0 backbone with a seeded random 3-class head."""
    return write_random_head_checkpoint(tmp_path_factory.mktemp("cli_predict_run"), CLASSES)


@pytest.fixture(scope="module")
def photos(ants_bees_small):
    return [str(p) for p in sorted((ants_bees_small / "val").glob("*/*.jpg"))[:3]]


def test_json_output_lists_top_k_labels_per_image(run_dir, photos):
    result = runner.invoke(app, ["predict", str(run_dir), *photos, "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert [r["path"] for r in results] == photos
    for item in results:
        assert item["error"] is None
        probabilities = [p["probability"] for p in item["predictions"]]
        assert len(probabilities) == 2 and probabilities[0] >= probabilities[1]
        assert {p["label"] for p in item["predictions"]} <= set(CLASSES)
        assert 0 < sum(probabilities) <= 1 + 1e-6


def test_table_output_shows_each_image_and_its_labels(run_dir, photos, monkeypatch):
    image = Path(photos[0])
    monkeypatch.chdir(image.parent)  # a short relative path stays on one line of the table
    result = runner.invoke(app, ["predict", str(run_dir), image.name, "-k", "3"])
    assert result.exit_code == 0, result.output
    assert image.name in result.output
    assert all(name in result.output for name in CLASSES)


def test_a_bad_image_gets_its_own_error_the_others_are_predicted_and_the_exit_code_is_1(run_dir, photos, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    result = runner.invoke(app, ["predict", str(run_dir), photos[0], str(fake), str(tmp_path / "missing.jpg"), "--json"])
    assert result.exit_code == 1
    results = json.loads(result.stdout)
    assert results[0]["error"] is None and len(results[0]["predictions"]) == 3
    assert "not an image" in results[1]["error"] and results[1]["predictions"] == []
    assert "cannot read file" in results[2]["error"]
    table = runner.invoke(app, ["predict", str(run_dir), photos[0], str(fake)])
    assert table.exit_code == 1 and "not an image" in table.output and "1 of 2 image(s) could not be read" in table.output


def test_bad_run_directory_or_options_are_one_line_and_exit_code_2(run_dir, photos, tmp_path):
    missing = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), photos[0]])
    assert missing.exit_code == 2 and "no checkpoint" in missing.output and "Traceback" not in missing.output
    (tmp_path / "best.pt").write_text("not a checkpoint")
    junk = runner.invoke(app, ["predict", str(tmp_path), photos[0]])
    assert junk.exit_code == 2 and "not a readable checkpoint" in junk.output and "Traceback" not in junk.output
    assert junk.stderr.startswith("error: ")
    zero = runner.invoke(app, ["predict", str(run_dir), photos[0], "--top-k", "0"])
    assert zero.exit_code == 2 and "--top-k" in zero.output and "greater than or equal to" in zero.output
    assert "Traceback" not in zero.output and '"predictions"' not in zero.output  # refused before predicting
    no_images = runner.invoke(app, ["predict", str(run_dir)])
    assert no_images.exit_code == 2 and "Missing argument 'images'" in no_images.output


def test_onnx_option_with_a_missing_or_foreign_onnx_file_is_one_line_and_exit_code_2(photos, tmp_path):
    missing = runner.invoke(app, ["predict", str(tmp_path / "model.onnx"), photos[0], "--onnx"])
    assert missing.exit_code == 2 and "no ONNX model" in missing.output
    foreign = tmp_path / "other.onnx"
    foreign.write_bytes(b"\x08\x07 not a protobuf of a model")
    result = runner.invoke(app, ["predict", str(foreign), photos[0], "--onnx"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(foreign) in result.output
