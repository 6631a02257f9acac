"""The learning-rate range test: a real curve on real photos, a suggestion with its rule, no backbone pass twice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from visiontrain.cli.main import app
from visiontrain.data.errors import DataError
from visiontrain.training.lr_finder import find_learning_rate, suggest


def test_the_rule_takes_the_steepest_fall_below_the_lowest_loss() -> None:
    rates = list(np.logspace(-6, 0, 61))
    # Flat, then falling fastest around 1e-3, lowest at 1e-1, then blowing up.
    x = np.log10(rates)
    smoothed = list(2.0 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1, (x + 1) * 8, 0))
    result = suggest(rates, smoothed)
    assert result["lowest_loss_rate"] == pytest.approx(0.1, rel=0.3)
    assert result["steepest_rate"] == pytest.approx(1e-3, rel=0.3)
    assert result["suggestion"] == pytest.approx(1e-3, rel=0.3) and "steepest" in result["reason"]
    with pytest.raises(DataError, match="ended after 3 steps"):
        suggest(rates[:3], smoothed[:3])


@pytest.mark.slow
def test_range_test_on_real_photos_suggests_a_rate_that_trains(ants_bees_small, tmp_path) -> None:
    from visiontrain.training.runner import run_training

    result = find_learning_rate({"image_size": 96, "augmented_copies": 0}, ants_bees_small, tmp_path / "find", steps=60)
    assert 1e-6 <= result["suggestion"] <= result["lowest_loss_rate"] / 10 * (1 + 1e-9)
    assert len(result["rates"]) == len(result["losses"]) >= 20
    assert min(result["smoothed"]) < result["smoothed"][0]  # the loss fell somewhere on the way up
    assert (tmp_path / "find" / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "find" / "lr_find.json").read_text())["suggestion"] == result["suggestion"]
    # Training at the suggestion then reads every feature from the cache the test filled.
    summary = run_training({"image_size": 96, "augmented_copies": 0, "epochs": 2, "learning_rate": result["suggestion"]},
                           ants_bees_small, tmp_path / "run")
    assert summary["counts"]["cache_misses"] == 0 and summary["status"] == "succeeded"


def test_cli_prints_the_suggestion_and_refuses_detection(ants_bees_small, datasets_dir, tmp_path) -> None:
    result = CliRunner().invoke(app, ["lr-find", str(ants_bees_small), "--out", str(tmp_path / "f"), "--steps", "30",
                                      "--image-size", "96", "--augmented-copies", "0"])
    assert result.exit_code == 0, result.output
    assert "suggested learning_rate:" in result.output and "why:" in result.output
    refused = CliRunner().invoke(app, ["lr-find", str(datasets_dir / "raccoon"), "--task", "detection", "--out", str(tmp_path / "d")])
    assert refused.exit_code == 2 and "trains its whole detector" in refused.output and "Traceback" not in refused.output


def test_the_rule_ignores_the_first_steps_while_the_average_settles() -> None:
    # A real small-data curve starts with a dip from the average's first batches: not the rate to train at.
    rates = list(np.logspace(-6, 0, 100))
    x = np.log10(rates)
    smoothed = list(0.66 - 0.6 / (1 + np.exp(-(x + 2.7) * 2.5)))
    smoothed[1] -= 0.05  # the settling dip
    result = suggest(rates, smoothed)
    assert 5e-4 <= result["steepest_rate"] <= 5e-3


@pytest.mark.slow
def test_learning_rate_auto_runs_the_range_test_first_and_trains_at_its_suggestion(ants_bees_small, tmp_path) -> None:
    import torch

    from visiontrain.training.runner import run_training

    # A fine-tuning rate above a tenth of whatever is found: the run caps it once the rate is known.
    settings = {"image_size": 96, "augmented_copies": 0, "epochs": 2, "learning_rate": "auto", "fine_tune": True,
                "fine_tune_epochs": 1, "fine_tune_learning_rate": 0.5}
    events = []
    summary = run_training(settings, ants_bees_small / "train", tmp_path / "run", validation_data=ants_bees_small / "val",
                           callback=events.append)
    curve = json.loads((tmp_path / "run" / "lr_find.json").read_text())
    found = summary["learning_rate_found"]
    assert found["learning_rate"] == pytest.approx(curve["suggestion"], rel=1e-2) and found["rule"] == curve["rule"]
    assert found["fine_tune_learning_rate"] == pytest.approx(found["learning_rate"] / 10, rel=1e-2)
    assert [e for e in events if e["type"] == "lr_find"][0]["learning_rate"] == found["learning_rate"]
    checkpoint = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)
    assert checkpoint["settings"]["learning_rate"] == found["learning_rate"]
    # The run's settings file keeps what the person asked for: the next run tests again.
    assert "learning_rate: auto" in (tmp_path / "run" / "settings.yaml").read_text()


def test_learning_rate_auto_is_refused_for_a_detector_and_bad_values_name_both_forms() -> None:
    from visiontrain.settings import TrainingSettings, load_settings
    from visiontrain.settings_check import settings_runnable_here

    problems = settings_runnable_here(TrainingSettings.for_task("detection", {"learning_rate": "auto"}), "detection")
    assert [p.field for p in problems] == ["learning_rate"] and "0.01" in str(problems[0])
    assert not settings_runnable_here(TrainingSettings(learning_rate="auto"), "classification")
    from visiontrain.settings import SettingsError

    with pytest.raises(SettingsError, match=r"learning_rate: Input should be a valid number or 'auto' \(got 'fast'\)"):
        load_settings(overrides={"learning_rate": "fast"})
