"""The "suggest settings for my data" heuristic: each rule moves the right way, and the result is valid."""

import pytest

from visiontrain.settings import TrainingSettings
from visiontrain.web.suggest import suggest_settings


def test_small_balanced_dataset_gets_large_split_small_batch_heavy_augmentation_no_fine_tuning():
    s = suggest_settings({"ants": 30, "bees": 30})
    assert s.settings["validation_split"] == pytest.approx(0.3)
    assert s.settings["batch_size"] == 8
    assert s.settings["augmented_copies"] == 3
    assert s.settings["fine_tune"] is False
    assert s.settings["epochs"] == 30
    assert not s.warnings
    assert set(s.reasons) >= {"validation_split", "batch_size", "augmented_copies", "fine_tune"}


def test_large_dataset_gets_small_split_bigger_batch_and_fine_tuning_at_a_tenth_of_the_rate():
    base = TrainingSettings(learning_rate=0.002)
    s = suggest_settings({"cat": 4000, "dog": 3500, "fox": 2500}, base=base)
    assert s.settings["validation_split"] == pytest.approx(0.1)
    assert s.settings["batch_size"] == 64
    assert s.settings["augmented_copies"] == 0
    assert s.settings["fine_tune"] is True
    assert s.settings["fine_tune_learning_rate"] == pytest.approx(0.0002)
    TrainingSettings(**(base.model_dump() | s.settings))


def test_imbalance_adds_augmentation_and_warns_naming_the_rare_concept():
    balanced = suggest_settings({"a": 300, "b": 300})
    skewed = suggest_settings({"a": 540, "b": 60})
    assert skewed.settings["augmented_copies"] == balanced.settings["augmented_copies"] + 1
    assert any("'b'" in w and "9.0x" in w for w in skewed.warnings)


def test_concepts_without_images_are_ignored_and_one_concept_is_refused():
    with pytest.raises(ValueError, match="at least two concepts"):
        suggest_settings({"raccoon": 200, "empty": 0})
