"""The settings object: defaults, validation messages, precedence, and what interfaces derive from it."""

from __future__ import annotations

import json

import pytest

from visiontrain.settings import GROUPS, SettingsError, TrainingSettings, load_settings, parse_assignment


def test_every_field_has_a_description_a_group_and_a_valid_default():
    schema = TrainingSettings.model_json_schema()
    for name, info in TrainingSettings.model_fields.items():
        assert info.description and len(info.description) > 15, name
        assert info.json_schema_extra["group"] in GROUPS, name
        assert "default" in schema["properties"][name], name
    TrainingSettings()  # the defaults validate together


def test_unknown_setting_suggests_the_close_name():
    with pytest.raises(SettingsError, match=r"lerning_rate: unknown setting \(did you mean 'learning_rate'\?\)"):
        load_settings(overrides={"lerning_rate": 0.01})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dropout": 1.5}, "dropout: Input should be less than or equal to 0.9"),
        ({"backbone": "vgg16"}, "backbone: Input should be"),
        ({"augmented_copies": 5}, "augmented_copies: Input should be less than or equal to 4"),
        ({"validation_split": 0}, "validation_split: Input should be greater than 0"),
        ({"optimizer": "lion"}, "optimizer: Input should be"),
        ({"epochs": "many"}, "epochs: Input should be a valid integer"),
    ],
)
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(overrides=overrides)


def test_fine_tune_rate_must_be_a_tenth_of_the_head_rate():
    with pytest.raises(SettingsError, match=r"fine_tune_learning_rate \(0.001\) must be at most learning_rate / 10 \(0.0001\)"):
        load_settings(overrides={"fine_tune": True, "learning_rate": 1e-3, "fine_tune_learning_rate": 1e-3})
    assert load_settings(overrides={"fine_tune": True, "learning_rate": 1e-3, "fine_tune_learning_rate": 1e-4}).fine_tune
    # Off, the fine-tuning rate does not matter.
    assert not load_settings(overrides={"fine_tune": False, "learning_rate": 1e-3, "fine_tune_learning_rate": 1e-3}).fine_tune
    # Left empty, it follows the head's: a tenth of it, whatever the head's rate.
    assert load_settings(overrides={"learning_rate": 5e-4}).fine_tune_rate == pytest.approx(5e-5)
    assert load_settings(overrides={"learning_rate": "auto"}).fine_tune_learning_rate is None


def test_fine_tune_needs_layers_to_unfreeze():
    with pytest.raises(SettingsError, match="retrained_layers is 0"):
        load_settings(overrides={"fine_tune": True, "retrained_layers": 0})


def test_precedence_defaults_then_file_then_overrides(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("learning_rate: 0.01\nepochs: 7\n")
    settings = load_settings(path, {"epochs": 3})
    assert (settings.learning_rate, settings.epochs, settings.dropout) == (0.01, 3, TrainingSettings().dropout)
    json_path = tmp_path / "settings.json"
    json_path.write_text(json.dumps({"optimizer": "sgd"}))
    assert load_settings(json_path).optimizer == "sgd"


def test_bad_settings_file_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n- not a mapping\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(path)
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "missing.yaml")


def test_assignment_values_are_typed():
    assert parse_assignment("learning_rate=1e-4") == ("learning_rate", 1e-4)
    assert parse_assignment("fine-tune=true") == ("fine_tune", True)
    assert parse_assignment("image_size=null") == ("image_size", None)
    with pytest.raises(SettingsError, match="name=value"):
        parse_assignment("epochs")


def test_yaml_round_trip_keeps_every_setting():
    settings = TrainingSettings(optimizer="rmsprop", head_layers=2, devices=2)
    import yaml

    assert TrainingSettings(**yaml.safe_load(settings.to_yaml())) == settings
    assert settings.non_default() == {"optimizer": "rmsprop", "head_layers": 2, "devices": 2}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": True}, "epochs: Input should be a valid integer"),
        ({"epochs": "2"}, "epochs: Input should be a valid integer"),
        ({"epochs": 2.0}, "epochs: Input should be a valid integer"),
        ({"fine_tune": 1}, "fine_tune: Input should be a valid boolean"),
        ({"horizontal_flip": "yes"}, "horizontal_flip: Input should be a valid boolean"),
        ({"learning_rate": "0.1"}, "learning_rate: Input should be a valid number"),
        ({"dropout": False}, "dropout: Input should be a valid number"),
        ({"image_size": "96"}, "image_size: Input should be a valid integer"),
        ({"devices": "2"}, "devices"),
        ({"seed": 2**32}, "seed: Input should be less than or equal to 4294967295"),
    ],
)
def test_numbers_and_booleans_are_strict(overrides, message):
    """`epochs: true` used to become 1 and `"2"` 2; a seed beyond 32 bits validated and then failed the run."""
    with pytest.raises(SettingsError, match=message):
        load_settings(overrides=overrides)


def test_strict_types_still_take_what_files_flags_and_forms_send(tmp_path):
    assert TrainingSettings(learning_rate=1).learning_rate == 1.0  # a float takes an int
    assert TrainingSettings(seed=2**32 - 1).seed == 2**32 - 1
    assert TrainingSettings(backbone="resnet18", optimizer="sgd", schedule="step", accelerator="cpu").backbone == "resnet18"
    path = tmp_path / "settings.yaml"
    path.write_text("learning_rate: 1e-2\nfine_tune_learning_rate: 1e-4\nepochs: 3\nfine_tune: true\ndevices: auto\nimage_size: null\n")
    settings = load_settings(path, dict(parse_assignment(a) for a in ("weight_decay=1e-5", "batch_size=16", "warmup=false", "devices=1")))
    assert (settings.learning_rate, settings.fine_tune_learning_rate, settings.epochs, settings.fine_tune) == (1e-2, 1e-4, 3, True)
    assert settings.weight_decay == 1e-5
    assert (settings.batch_size, settings.warmup, settings.devices, settings.image_size) == (16, False, 1, None)
    stored = TrainingSettings(epochs=4, dropout=0.5).model_dump(mode="json")  # what a version keeps and a worker reads back
    assert TrainingSettings(**stored) == TrainingSettings.model_validate_json(TrainingSettings(**stored).model_dump_json())
