"""`visiontrain train` ends with "What to try next"; `visiontrain advise RUN_DIR [--json]` says it again for a run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visiontrain.cli.main import app

runner = CliRunner()


def words(output: str) -> str:
    """The output as one line (Rich wraps it to the terminal's width)."""
    return " ".join(output.split())


@pytest.mark.slow
def test_train_then_advise_on_real_photos(ants_bees_small, tmp_path):
    # 12 + 12 training and 6 + 6 validation photos: too few validation images, whatever the curves say.
    out = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(ants_bees_small), "--out", str(out), "--epochs", "2", "--quiet"])
    assert trained.exit_code == 0, trained.output
    text = words(trained.output)
    assert text.index("What to try next") > text.index("outcome")
    assert "ants has 6 validation images: one image moves its score by 17 points" in text
    assert "validation_split does not apply" in text  # the photos came with their own val/ folder

    again = runner.invoke(app, ["advise", str(out), "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["reason"] is None and [i["rule"] for i in report["items"]] == ["few_validation_images"]

    # A learning rate of 3 throws the head's weights far off from the first epoch: the advice says so, as flags.
    wild = tmp_path / "wild"
    assert runner.invoke(app, ["train", str(ants_bees_small), "--out", str(wild), "--epochs", "3", "--learning-rate", "3",
                               "--quiet"]).exit_code == 0
    advised = runner.invoke(app, ["advise", str(wild)])
    assert advised.exit_code == 0, advised.output
    assert "The learning rate looks too high" in words(advised.output)
    assert "try: --learning-rate 0.3 --gradient-clip-norm 1" in words(advised.output)
    items = json.loads(runner.invoke(app, ["advise", str(wild), "--json"]).output)["items"]
    assert items[0]["changes"] == {"learning_rate": 0.3, "gradient_clip_norm": 1.0}
    assert items[0]["current"] == {"learning_rate": 3.0, "gradient_clip_norm": 0.0}


def test_advise_on_something_that_is_not_a_run_is_one_line(tmp_path):
    missing = runner.invoke(app, ["advise", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "run directory not found" in missing.output and "Traceback" not in missing.output
    empty = runner.invoke(app, ["advise", str(tmp_path)])
    assert empty.exit_code == 2 and "is not a run directory (no settings.yaml)" in empty.output
    assert len(empty.output.strip().splitlines()) == 1
