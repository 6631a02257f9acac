"""`visiontrain suggest` as a user runs it: a table by default, JSON with --json, one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from visiontrain.cli.main import app

runner = CliRunner()


def test_json_reports_the_real_counts_of_the_datasets_own_validation_set(datasets_dir):
    result = runner.invoke(app, ["suggest", str(datasets_dir / "ants_bees"), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["counts"]["train"] == {"ants": 124, "bees": 121} and body["counts"]["validation"] == {"ants": 70, "bees": 83}
    assert "validation_split" not in body["settings"] and body["kept"]["validation_split"].startswith("untouched")
    assert body["settings"]["batch_size"] == 16 and body["settings"]["fine_tune"] is True
    # 245 training images with one augmented copy + 153 validation: Lite2's extra cost is seconds.
    assert body["settings"]["backbone"] == "efficientnet_lite2" and "643 images" in body["reasons"]["backbone"]
    assert {q["setting"] for q in body["questions"]} == {"horizontal_flip", "color", "vertical_flip"}


def test_a_separate_validation_set_and_a_chosen_setting(datasets_dir):
    result = runner.invoke(app, ["suggest", str(datasets_dir / "ants_bees" / "train"), "--val", str(datasets_dir / "ants_bees" / "val"),
                                 "--task", "classification", "--set", "learning_rate=0.002", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["counts"]["validation_images"] == 153 and "ants_bees/val" in body["counts"]["validation_set"]


def test_the_table_says_each_value_and_why(datasets_dir):
    result = runner.invoke(app, ["suggest", str(datasets_dir / "ants_bees" / "val")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "validation_split" in result.output and "0.25" in result.output  # 70 ants: 15 of them held out
    assert "Does left or right matter in your images?" in result.output
    assert "visiontrain train" in result.output and "--set validation_split=0.25" in result.output


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, datasets_dir):
    missing = runner.invoke(app, ["suggest", str(tmp_path / "nowhere"), "--json"])
    assert missing.exit_code == 2 and "data not found" in missing.output and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    task = runner.invoke(app, ["suggest", str(datasets_dir / "ants_bees"), "--task", "segmentation"])
    assert task.exit_code == 2 and "unknown task 'segmentation'" in task.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["suggest", str(empty)])
    assert nothing.exit_code == 2 and "Traceback" not in nothing.output and nothing.output.startswith("error:")
