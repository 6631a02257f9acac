"""Training settings: the single source of truth for every training option.

The CLI flags, the REST API schema, the web form, defaults, validation and help text are all
derived from :class:`TrainingSettings`; nothing re-lists the fields by hand. Each field carries a
``group`` (how forms and ``visiontrain settings`` organise it) in its JSON-schema extras.

Precedence is single and stated: defaults < settings file < flags / API body (see
:func:`load_settings`). ``None`` means "the backbone's own value" where a field says so.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

GROUPS = (
    "Backbone",
    "Head",
    "Optimizer",
    "Schedule",
    "Early stopping",
    "Data & split",
    "Augmentation",
    "Fine-tuning",
    "Detection",
    "Hardware",
)


def _field(default: Any, description: str, group: str, *, basic: bool | str = False, **kwargs: Any) -> Any:
    """``basic``: the field is in the form's basic view (``"switch"``: shown there as on/off, off being 0 and
    on the default); every other field is under "Advanced"."""
    assert group in GROUPS, group
    extra: dict[str, Any] = {"group": group} | ({"basic": basic} if basic else {})
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


class Backbone(StrEnum):
    efficientnet_lite0 = "efficientnet_lite0"
    efficientnet_lite1 = "efficientnet_lite1"
    efficientnet_lite2 = "efficientnet_lite2"
    efficientnet_b0 = "efficientnet_b0"
    efficientnet_b4 = "efficientnet_b4"
    efficientnet_b7 = "efficientnet_b7"
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"
    resnet101 = "resnet101"
    resnet152 = "resnet152"


class ResizeMode(StrEnum):
    squash = "squash"
    center_crop = "center_crop"
    letterbox = "letterbox"


class BatchNormMode(StrEnum):
    frozen = "frozen"
    train = "train"


class Optimizer(StrEnum):
    adam = "adam"
    sgd = "sgd"
    rmsprop = "rmsprop"
    adamax = "adamax"
    adagrad = "adagrad"
    adadelta = "adadelta"


class Schedule(StrEnum):
    none = "none"
    on_plateau = "on_plateau"
    step = "step"
    exponential = "exponential"


class Accelerator(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


# numpy's and Lightning's seeding take 32 bits: a larger seed validates in Python but fails the run.
MAX_SEED = 2**32 - 1


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each bad field and what is allowed."""


class TrainingSettings(BaseModel):
    """Every option of a training run, each with a default and a one-line meaning."""

    # strict: numbers and booleans must arrive as numbers and booleans (`epochs: true` or `"2"` is refused, not
    # turned into 1 or 2); a float still takes an int. Choices (enums) are named by their string value.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_enum_values=True, validate_default=True, strict=True
    )

    # --- Backbone
    backbone: Backbone = _field(
        Backbone.efficientnet_lite0,
        "ImageNet-pretrained network that turns an image into features (efficientnet_lite0/1/2 work offline).",
        "Backbone",
        strict=False,
        basic=True,
    )
    pretrained: bool = _field(True, "Start from ImageNet weights (off: random weights, needs far more data).", "Backbone")
    weights_path: str | None = _field(
        None, "Local weights file (.pth/.pt/.safetensors) for the backbone instead of the built-in ones.", "Backbone"
    )
    image_size: int | None = _field(
        None, "Side in pixels the image is resized to (empty: the backbone's own, 224 for lite0).", "Backbone", ge=32, le=1024
    )
    resize_mode: ResizeMode = _field(
        ResizeMode.squash,
        "How images reach that size: squash (stretch), center_crop (cut the edges), letterbox (pad to square).",
        "Backbone",
        strict=False,
    )

    # --- Head
    head_layers: int = _field(0, "Hidden layers in the new head before the output layer (0: a linear head).", "Head", ge=0, le=4)
    head_units: int = _field(256, "Units in each hidden layer of the head.", "Head", ge=8, le=8192)
    dropout: float = _field(0.2, "Fraction of features dropped at random while training the head (0 to 0.9).", "Head", ge=0.0, le=0.9)
    balance_concepts: bool = _field(
        False, "Weight each concept by how rare it is, so a concept with few images counts as much as a common one "
        "(classification: each image's loss by 1 / its class's share; tagging: each concept's positive images).", "Head"
    )
    label_smoothing: float = _field(
        0.0, "Classification: aim the loss at this much less than full certainty, spread over the other classes "
        "(0: off; 0.1 is usual); makes probabilities less overconfident.", "Head", ge=0.0, le=0.5,
    )

    # --- Optimizer
    optimizer: Optimizer = _field(Optimizer.adam, "Algorithm that updates the weights.", "Optimizer", strict=False)
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] | Literal["auto"] = _field(
        1e-3, "Step size of the head's training (the most important knob); auto: a range test over the cached features "
        "picks it before training (see visiontrain lr-find).", "Optimizer", basic=True,
    )
    weight_decay: float = _field(1e-4, "L2 penalty that keeps weights small (0: none).", "Optimizer", ge=0.0, le=1.0)
    momentum: float = _field(0.9, "Momentum for sgd and rmsprop (ignored by the others).", "Optimizer", ge=0.0, lt=1.0)
    gradient_clip_norm: float = _field(
        0.0, "Largest gradient norm per step; larger gradients are scaled down, which keeps a high rate from diverging (0: off).",
        "Optimizer", ge=0.0, le=1000.0,
    )

    # --- Schedule
    schedule: Schedule = _field(
        Schedule.on_plateau,
        "How the learning rate changes over epochs: none, on_plateau, step or exponential.",
        "Schedule",
        strict=False,
    )
    warmup: bool = _field(True, "Raise the learning rate linearly from near zero through the first epoch.", "Schedule")
    schedule_factor: float = _field(
        0.5, "Factor the learning rate is multiplied by at each decay (on_plateau and step).", "Schedule", gt=0.0, lt=1.0
    )
    schedule_patience: int = _field(2, "on_plateau: epochs without improvement before the rate decays.", "Schedule", ge=0, le=100)
    step_size: int = _field(5, "step: epochs between two decays.", "Schedule", ge=1, le=1000)
    gamma: float = _field(0.9, "exponential: factor applied to the learning rate after every epoch.", "Schedule", gt=0.0, le=1.0)

    # --- Early stopping
    epochs: int = _field(20, "Most passes over the training images for the head.", "Early stopping", ge=1, le=1000, basic=True)
    early_stopping: bool = _field(True, "Stop when the validation metric (accuracy; mAP for tagging) stops improving.", "Early stopping")
    patience: int = _field(5, "Epochs without improvement before training stops.", "Early stopping", ge=1, le=1000)
    min_delta: float = _field(0.001, "Smallest rise in the validation metric that counts as improvement.", "Early stopping", ge=0.0, le=1.0)

    # --- Data & split
    batch_size: int = _field(32, "Images per step on each device.", "Data & split", ge=1, le=4096)
    validation_split: float = _field(
        0.2,
        "Fraction of images held out for validation (stratified by concept, seeded); ignored when a validation set is given. "
        "On the platform the view's split decides after its first version (re-split the view to change it).",
        "Data & split",
        gt=0.0,
        lt=1.0,
    )
    seed: int = _field(
        42, "Random seed: same seed, data and settings give the same model on the CPU.", "Data & split", ge=0, le=MAX_SEED
    )

    # --- Augmentation
    augmented_copies: int = _field(
        1,
        "Augmented versions of each training image added per epoch (0 to 4, so at least 20% stay original).",
        "Augmentation",
        ge=0,
        le=4,
        basic="switch",
    )
    horizontal_flip: bool = _field(True, "Mirror images left-right at random.", "Augmentation")
    vertical_flip: bool = _field(False, "Mirror images top-bottom at random (aerial or microscope images).", "Augmentation")
    color: float = _field(
        0.2, "Strength of random brightness, contrast and saturation changes (0: off); hue moves a quarter as much.",
        "Augmentation", ge=0.0, le=1.0,
    )
    scale: float = _field(0.2, "Random zoom: crops keep at least 1 - scale of the image (0: off).", "Augmentation", ge=0.0, le=0.9)
    skew: float = _field(0.1, "Strength of random shear and perspective distortion (0: off).", "Augmentation", ge=0.0, le=1.0)
    gaussian_noise: float = _field(0.0, "Standard deviation of pixel noise added, on a 0-1 scale (0: off).", "Augmentation", ge=0.0, le=0.5)

    # --- Fine-tuning
    fine_tune: bool = _field(
        True, "After the head, retrain the last backbone layers at a lower rate; the result is kept only when it beats the "
        "head alone.", "Fine-tuning", basic=True,
    )
    retrained_layers: int = _field(
        4, "Backbone blocks unfrozen by fine-tuning, counted from the top (0: frozen base).", "Fine-tuning", ge=0, le=50
    )
    fine_tune_epochs: int = _field(5, "Passes over the images while fine-tuning.", "Fine-tuning", ge=1, le=50)
    fine_tune_learning_rate: float | None = _field(
        None, "Learning rate while fine-tuning (empty: a tenth of the head's; at most that when set); it decays along a "
        "cosine to near zero over the fine-tuning epochs.", "Fine-tuning", gt=0.0, le=1.0
    )
    fine_tune_batch_norm: BatchNormMode = _field(
        BatchNormMode.frozen, "Batch normalisation in the retrained blocks: frozen (keep ImageNet's statistics, "
        "only their scale and shift learn) or train (re-estimate statistics from your batches).", "Fine-tuning",
        strict=False,
    )
    fine_tune_fresh_augmentation: bool = _field(
        False, "Augment every image anew in each fine-tuning epoch (the frozen layers then run at every step, several "
        "times slower) instead of reusing fixed augmented copies, whose frozen-layer outputs are computed once.",
        "Fine-tuning",
    )

    # --- Detection
    shorter_side: int = _field(
        384, "Detection: the image's shorter side is resized to this many pixels (larger finds smaller objects, slower).",
        "Detection", ge=128, le=1600,
    )
    longer_side: int = _field(
        640, "Detection: the longer side is kept at most this many pixels (wins over shorter_side for long images).",
        "Detection", ge=128, le=2666,
    )
    anchor_sizes: list[int] = _field(
        [32, 64, 128, 256], "Detection: object sizes in pixels the region proposals start from, one per pyramid level (finest first).",
        "Detection", min_length=1, max_length=6,
    )
    anchor_ratios: list[float] = _field(
        [0.5, 1.0, 2.0], "Detection: height/width ratios of the proposal anchors at every level.", "Detection",
        min_length=1, max_length=7,
    )
    score_threshold: float | None = _field(
        None, "Detection: boxes scoring below this are left out of predictions and of precision/recall (mAP uses every "
        "box); empty: chosen on the validation images where F1 is best.", "Detection", ge=0.0, lt=1.0,
    )
    nms_iou: float = _field(
        0.5, "Detection: two boxes of one concept overlapping more than this (IoU) are one object; the lower-scoring is dropped.",
        "Detection", gt=0.0, le=1.0,
    )
    detections_per_image: int = _field(100, "Detection: most boxes kept per image.", "Detection", ge=1, le=1000)

    # --- Hardware
    accelerator: Accelerator = _field(
        Accelerator.auto, "Where to train: auto (GPU when there is one), cpu or gpu.", "Hardware", strict=False
    )
    devices: int | Literal["auto"] = _field(
        "auto",
        "Devices for data-parallel training (auto: one; 2 or more: that many GPUs, or on the CPU that many processes, "
        "at most one per core), each in its own process; batch_size is per device, so a step sees devices x batch_size images.",
        "Hardware",
    )
    mixed_precision: bool = _field(True, "Use 16-bit mixed precision on a GPU (ignored on the CPU).", "Hardware")

    @model_validator(mode="after")
    def _check_combinations(self) -> "TrainingSettings":
        problems = []
        # With learning_rate auto the rule is applied once the rate is found (the fine-tuning rate is capped then).
        if (self.fine_tune and self.learning_rate != "auto" and self.fine_tune_learning_rate is not None
                and self.fine_tune_learning_rate > self.learning_rate / 10 * (1 + 1e-9)):
            problems.append(
                f"fine_tune_learning_rate ({self.fine_tune_learning_rate:g}) must be at most learning_rate / 10 "
                f"({self.learning_rate / 10:g}): a high rate destroys the pretrained features"
            )
        if self.fine_tune and self.retrained_layers == 0:
            problems.append("fine_tune is on but retrained_layers is 0: set retrained_layers >= 1 or turn fine_tune off")
        if any(size < 4 or size > 2048 for size in self.anchor_sizes):
            problems.append(f"anchor_sizes must be between 4 and 2048 pixels (got {self.anchor_sizes})")
        if any(ratio <= 0.05 or ratio > 20 for ratio in self.anchor_ratios):
            problems.append(f"anchor_ratios must be between 0.05 and 20 (got {self.anchor_ratios})")
        if self.longer_side < self.shorter_side:
            problems.append(f"longer_side ({self.longer_side}) must be at least shorter_side ({self.shorter_side})")
        if isinstance(self.devices, int) and self.devices < 1:
            problems.append("devices must be at least 1 or 'auto'")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- helpers used by every interface

    @property
    def fine_tune_rate(self) -> float:
        """The fine-tuning rate to train at: the one set, else a tenth of the head's (known once an
        ``auto`` rate has been found)."""
        if self.fine_tune_learning_rate is not None:
            return self.fine_tune_learning_rate
        if self.learning_rate == "auto":
            raise ValueError("learning_rate auto has not been resolved yet")
        return self.learning_rate / 10

    @classmethod
    def field_groups(cls) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {g: [] for g in GROUPS}
        for name, info in cls.model_fields.items():
            groups[info.json_schema_extra["group"]].append(name)  # type: ignore[index]
        return groups

    @classmethod
    def for_task(cls, task: str, values: dict[str, Any]) -> "TrainingSettings":
        """Settings from ``values`` (what a user set) over ``task``'s defaults, validated together (so a
        combination rule sees the task's learning rate, not the shared default's)."""
        merged = cls(**{**TASK_DEFAULTS.get(task, {}), **values})
        object.__setattr__(merged, "__pydantic_fields_set__", set(values))
        return merged

    def with_task_defaults(self, task: str) -> "TrainingSettings":
        """These settings with ``task``'s own defaults (``TASK_DEFAULTS``) for every field that was
        not set explicitly (settings loaded from a file, flags or an API body mark what they set)."""
        defaults = TASK_DEFAULTS.get(task, {})
        unset = {name: value for name, value in defaults.items() if name not in self.model_fields_set}
        if not unset:
            return self
        values = {**self.model_dump(), **unset}
        merged = type(self)(**values)
        # What the user set stays marked as set; the task's defaults are defaults.
        object.__setattr__(merged, "__pydantic_fields_set__", set(self.model_fields_set))
        return merged

    def non_default(self) -> dict[str, Any]:
        """The settings that differ from the defaults (for short summaries and comparisons)."""
        return self.model_dump(exclude_defaults=True, mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# Where a task's best starting point differs from the shared default. Detection trains a whole
# Faster R-CNN (pyramid, proposal and box heads) from scratch on the frozen backbone: SGD at 0.01
# with momentum, small batches (each image is large), a clipped gradient (dense images with many
# boxes otherwise diverge at this rate), no shear or perspective (a distorted box no longer bounds
# its object), and two augmented variants per image over more epochs than a linear head needs.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "detection": {
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "gradient_clip_norm": 10.0,
        "batch_size": 4,
        "epochs": 16,
        "patience": 5,
        "augmented_copies": 2,
        "skew": 0.0,
        "scale": 0.3,
        "retrained_layers": 3,
        # Fine-tuning a detector retrains its body on images each step (no kept inputs yet): minutes, unmeasured gain.
        "fine_tune": False,
        "fine_tune_epochs": 3,
        "fine_tune_learning_rate": 1e-4,
    },
}


def format_validation_error(error: ValidationError) -> str:
    """One readable line per problem: `field: message (got value)`."""
    lines = []
    # A field that takes a number or a word (learning_rate, devices) fails once per branch: one line says both.
    branches: dict[str, list[dict]] = {}
    for item in error.errors():
        loc = item["loc"]
        if len(loc) == 2 and loc[0] in TrainingSettings.model_fields and isinstance(loc[1], str):
            branches.setdefault(str(loc[0]), []).append(item)
    for name, items in branches.items():
        wanted = " or ".join(i["msg"].removeprefix("Input should be ") for i in items)
        lines.append(f"{name}: Input should be {wanted} (got {items[0].get('input')!r})")
    for item in error.errors():
        if len(item["loc"]) == 2 and str(item["loc"][0]) in branches:
            continue
        where = ".".join(str(p) for p in item["loc"]) or "settings"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            close = _closest(str(item["loc"][-1]))
            msg = "unknown setting" + (f" (did you mean '{close}'?)" if close else "; `visiontrain settings` lists them")
            lines.append(f"{where}: {msg}")
            continue
        lines.append(f"{where}: {msg} (got {item.get('input')!r})" if where != "settings" else msg)
    return "\n".join(lines)


def _closest(name: str) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(TrainingSettings.model_fields), n=1, cutoff=0.6)
    return match[0] if match else None


def parse_assignment(text: str) -> tuple[str, Any]:
    """`name=value` from the command line; the value is parsed as YAML (numbers, booleans, null)."""
    if "=" not in text:
        raise SettingsError(f"--set expects name=value, got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip().replace("-", "_")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return name, value


def read_settings_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"settings file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping of setting: value")
    if path.suffix != ".json":  # YAML 1.1 reads `1e-4` (no dot) as a string; it is a number to anyone writing it
        data = {k: float(v) if isinstance(v, str) and _YAML_EXPONENT.match(v) else v for k, v in data.items()}
    return data


_YAML_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def load_settings(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None, *, task: str | None = None
) -> TrainingSettings:
    """Defaults (``task``'s own where it has them) < file < overrides. Raises SettingsError with one line per bad field."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update(read_settings_file(file))
    values.update({k: v for k, v in (overrides or {}).items()})
    try:
        return TrainingSettings.for_task(task, values) if task else TrainingSettings(**values)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None
