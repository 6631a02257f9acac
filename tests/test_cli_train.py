"""`visiontrain train` and `visiontrain settings` as a user runs them: flags, config files, exit codes."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from visiontrain.cli.main import app

runner = CliRunner()


@pytest.mark.slow
def test_train_with_flags_config_and_set(ants_bees_small, tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("epochs: 5\nlearning_rate: 0.002\nimage_size: 96\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(ants_bees_small), "--out", str(out), "--config", str(config),
                                 "--epochs", "2", "--set", "dropout=0.3", "--no-horizontal-flip", "--optimizer", "sgd",
                                 "--augmented-copies", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    settings = yaml.safe_load((out / "settings.yaml").read_text())
    # Flags beat the file, the file beats the defaults.
    assert (settings["epochs"], settings["learning_rate"], settings["dropout"]) == (2, 0.002, 0.3)
    assert settings["horizontal_flip"] is False and settings["optimizer"] == "sgd"
    assert json.loads((out / "summary.json").read_text())["status"] == "succeeded"
    assert "val accuracy" in result.output


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, ants_bees_small):
    missing = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert missing.exit_code == 2 and "data not found" in missing.output and "Traceback" not in missing.output
    bad = runner.invoke(app, ["train", str(ants_bees_small), "--out", str(tmp_path / "run"), "--dropout", "2", "--set", "lr=1"])
    assert bad.exit_code == 2
    assert "dropout: Input should be less than or equal to 0.9" in bad.output
    assert "lr: unknown setting" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_classes = runner.invoke(app, ["train", str(empty), "--out", str(tmp_path / "run")])
    assert no_classes.exit_code == 2 and "Traceback" not in no_classes.output
    assert f"{empty}: no files in the dataset" in no_classes.output
    assert not (tmp_path / "run" / "best.pt").exists()
    # Typed values: a number where a switch belongs, or words where a number does, name the field.
    strict = runner.invoke(app, ["train", str(ants_bees_small), "--out", str(tmp_path / "run"), "--set", "fine_tune=1",
                                 "--set", "epochs=two"])
    assert strict.exit_code == 2 and "fine_tune: Input should be a valid boolean" in strict.output
    assert "epochs: Input should be a valid integer" in strict.output


def test_settings_lists_every_setting_with_group_and_yaml_round_trips():
    from visiontrain.settings import TrainingSettings

    listing = runner.invoke(app, ["settings"], terminal_width=200)
    assert listing.exit_code == 0
    for name in TrainingSettings.model_fields:
        assert name in listing.output, name
    for group in ("Backbone", "Augmentation", "Fine-tuning"):
        assert group in listing.output
    dumped = runner.invoke(app, ["settings", "--yaml"])
    assert TrainingSettings(**yaml.safe_load(dumped.output)) == TrainingSettings()
    schema = json.loads(runner.invoke(app, ["settings", "--json"]).output)
    assert schema["properties"]["learning_rate"]["default"] == 0.001


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_after_the_current_batch_and_keeps_the_best_checkpoint(ants_bees_small, tmp_path, signal_name):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "visiontrain.cli.main", "train", str(ants_bees_small), "--out", str(out), "--quiet",
         "--image-size", "64", "--augmented-copies", "0", "--epochs", "1000", "--no-early-stopping", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the first epoch has been validated
            metrics = out / "metrics.jsonl"
            if metrics.exists() and '"type": "epoch"' in metrics.read_text():
                break
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.2)
        process.send_signal(getattr(signal, signal_name))
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, output
    if signal_name == "SIGINT":
        assert "Stopping after the current batch" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "cancelled" and summary["epochs_run"]["head"] < 1000
    assert (out / "best.pt").is_file()


def test_a_union_flag_is_read_as_its_value_and_checked_before_any_data_work(tmp_path) -> None:
    """--devices 9999 reaches the settings as a number (not the text, which strict types refuse) and,
    on a machine with fewer devices (GPUs, or CPU cores: one process each), is refused before the
    dataset is even looked at."""
    from typer.testing import CliRunner

    from visiontrain.cli.main import app

    result = CliRunner().invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--devices", "9999"])
    assert result.exit_code != 0
    assert "devices: is 9999" in result.output and "values that work here: 1, " in result.output
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_tagging_through_the_cli_on_the_coco128_tags(datasets_dir, tmp_path):
    """train --task tagging on the shared tags.csv, then evaluate, export and predict, as a user types them."""
    from typer.testing import CliRunner

    from visiontrain.cli.main import app

    runner = CliRunner()
    run = tmp_path / "tags"
    trained = runner.invoke(app, ["train", str(datasets_dir / "coco128_coco" / "tags.csv"), "--task", "tagging", "--out", str(run),
                                  "--quiet", "--image-size", "64", "--epochs", "2", "--augmented-copies", "0"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "tagging" and summary["monitor"] == "val_map" and len(summary["classes"]) == 71
    assert summary["counts"]["train_images"] + summary["counts"]["val_images"] == 128
    assert "val map" in trained.output and (run / "pr_curves.png").is_file()

    evaluated = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["map"] == pytest.approx(summary["best_metrics"]["val_map"], abs=1e-4)
    assert runner.invoke(app, ["export", str(run)]).exit_code == 0
    image = datasets_dir / "coco128_coco" / "images" / "000000000009.jpg"
    predicted = runner.invoke(app, ["predict", str(run), str(image), "--json", "--onnx"])
    assert predicted.exit_code == 0, predicted.output
    (result,) = json.loads(predicted.output)
    assert len(result["predictions"]) == 71 and all({"on", "threshold"} <= set(p) for p in result["predictions"])
    table = runner.invoke(app, ["predict", str(run), str(image)])
    assert table.exit_code == 0 and "threshold" in table.output
