"""The quality bar: default settings on the full shared ants/bees photos reach at least 95% validation accuracy."""

from __future__ import annotations

import pytest

from visiontrain.engine import train


@pytest.mark.slow
def test_default_settings_reach_95_percent_on_ants_and_bees(datasets_dir, tmp_path):
    summary = train(None, datasets_dir / "ants_bees", tmp_path)
    assert summary["status"] == "succeeded"
    assert summary["counts"]["train_images"] == 245 and summary["counts"]["val_images"] == 153
    assert summary["best_metrics"]["val_accuracy"] >= 0.95, summary["best_metrics"]
    assert summary["evaluation"]["accuracy"] == pytest.approx(summary["best_metrics"]["val_accuracy"], abs=1e-6)
