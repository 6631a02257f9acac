""""What to try next" after a run, from its own curves and evaluation.

Plain data in, plain data out, so the CLI (from a run directory) and the platform (from a version's
stored metrics rows, summary and evaluation) give the same advice: :func:`advise` takes the run's
epoch records (``training/events.py``'s epoch events), its summary (``summary.json``), its evaluation
(``evaluation.json``) and the settings it ran with, and returns :class:`Advice` items, each naming its
evidence (the numbers) and at most two settings to change, validated as a whole by ``TrainingSettings``.

The rules, in the order they are shown (the curves first: a wrong rate hides everything else):

- **learning rate too high**: the loss stopped being finite, or, over the first epochs, the training
  loss did not even halve while it rose from one epoch to the next or the validation loss doubled, or
  the first validation loss is several times a guess's (confidently wrong).
  Lower ``learning_rate`` tenfold (and clip the gradient). Overfitting also drives validation loss up,
  but there the training loss falls fast: the "did not halve" condition keeps the two apart.
- **learning rate too low**: the training loss fell by less than ``SLOW_FALL_PER_EPOCH`` per epoch over
  the first epochs while the monitored metric was still at its best in the last epoch. Raise
  ``learning_rate`` tenfold (the specification's recipe moves the rate by factors of ten).
- **overfitting**: training loss far below validation loss at the end and the validation loss risen
  above its lowest (or the metric fallen from its best). More augmented copies (cheap: the feature
  cache computes each copy once) and more dropout (or weight decay).
- **underfitting**: the training loss levelled off above ``UNDERFIT_LOSS_SHARE`` of the loss of a
  guess from the class shares, so the head cannot separate even the training images: a hidden head layer,
  fine-tuning the backbone's last blocks, or a larger backbone.
- **still improving**: every planned epoch ran and the metric was still rising at the last one: more epochs.
- **fine-tuning did not help**: the kept checkpoint is the head's although fine-tuning ran: turn it off
  (it costs most of the run's time) or lower its rate.
- **confused pairs** (classification): two classes mistaken for each other in at least ``CONFUSED_SHARE``
  of their validation images, from the confusion matrix.
- **weak concepts** (tagging, detection): a concept's average precision below ``WEAK_AP``.
- **imbalance**: the largest concept has ``IMBALANCE_RATIO`` times the training images of the smallest
  (the data checks' threshold): weight the loss by rarity (``balance_concepts``).
- **too few validation images**: fewer than the data checks' ``MIN_VALIDATION_IMAGES_PER_CONCEPT`` of a
  concept, so one image moves its score by several points: a larger ``validation_split``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from visiontrain.data.checks import IMBALANCE_RATIO, MIN_TRAINING_IMAGES_PER_CONCEPT, MIN_VALIDATION_IMAGES_PER_CONCEPT
from visiontrain.settings import TrainingSettings

# Learning rate too high. Epochs judged: the first few, where a good rate makes the loss fall fastest.
EARLY_EPOCHS = 3
# ... the training loss should at least halve over them (a linear head on pretrained features falls
# from about 0.6 to 0.15 on two classes at the default rate; a diverging one does not halve) ...
EARLY_FALL = 0.5
# ... and one epoch's training loss 10% above the one before, or the validation loss doubled from the
# first epoch, shows the steps overshooting rather than slow progress.
UNSTEADY_RISE = 0.10
VAL_LOSS_BLOWUP = 2.0
# ... or, from the first epoch, a validation loss this many times a guess's (the loss of predicting the
# class shares): predictions confidently wrong, the weights thrown far off. Overfitting raises the
# validation loss gradually, from a low start.
GUESS_MULTIPLE = 3.0
# How much the rate moves per piece of advice: the specification's recipe steps it by factors of ten.
RATE_FACTOR = 10.0
# A clipped gradient keeps a rate that is still on the high side from diverging.
SUGGESTED_CLIP_NORM = 1.0

# Learning rate too low: less than this fall of the training loss per epoch (geometric mean) over the
# first SLOPE_EPOCHS epochs, with the metric still at its best at the end. The default rate falls by
# 30% or more per epoch there; 1e-5 falls by about 1.4%.
SLOW_FALL_PER_EPOCH = 0.05
SLOPE_EPOCHS = 5

# Overfitting: at the last epoch the training loss below this share of the validation loss ...
OVERFIT_LOSS_RATIO = 0.5
# ... and the validation loss this much above its lowest, or the metric this far below its best
# (two points: more than one image's worth on a validation set of 100).
VAL_LOSS_RISE = 0.2
METRIC_FALL = 0.02
# Dropout raised to at least this, and the weight decay multiplied by this, against overfitting.
OVERFIT_DROPOUT = 0.5
WEIGHT_DECAY_FACTOR = 10.0

# Underfitting: the training loss (at the best epoch) still above this share of a guess's loss, and
# levelled off: less than PLATEAU_FALL lower over the last PLATEAU_EPOCHS epochs (still falling fast, the
# run was only short: more epochs, not more capacity).
UNDERFIT_LOSS_SHARE = 0.5
PLATEAU_FALL = 0.10
PLATEAU_EPOCHS = 3
# Underfitting with the head and fine-tuning at their most: the next larger backbone whose weights ship
# with the package (works offline).
LARGER_OFFLINE_BACKBONE = {"efficientnet_lite0": "efficientnet_lite1", "efficientnet_lite1": "efficientnet_lite2"}
# Still improving: the metric gained at least min_delta over this many last epochs.
STILL_RISING_EPOCHS = 3
EPOCHS_FACTOR = 2

# Confused pairs: mistaken for each other in at least this share of the pair's validation images, and at
# least this many images (two mistakes are chance on any validation set).
CONFUSED_SHARE = 0.10
CONFUSED_MIN_ERRORS = 3
# Weak concepts: average precision below this (0.5: half the ranked predictions are wrong).
WEAK_AP = 0.5
# The most pairs or concepts named in one piece of advice.
MAX_NAMED = 3
# How far a run's validation share may lie from validation_split for the split to be the run's own.
SPLIT_SHARE_TOLERANCE = 0.02
# A validation split larger than this starves training (the specification's rule of thumb: ~0.4 with
# ~40 images per concept).
MAX_SUGGESTED_SPLIT = 0.4


@dataclass(frozen=True)
class Advice:
    """One thing to try next: why (``evidence``, with the numbers), what (``changes``: setting -> value,
    valid together with the rest of the run's settings; ``current``: their values in this run)."""

    rule: str
    title: str
    evidence: str
    why: str
    changes: dict[str, Any] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AdviceReport:
    """The advice for a run; ``reason`` says why there is none (not finished, or nothing to change)."""

    items: list[Advice]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [a.to_dict() for a in self.items], "reason": self.reason}


def advise(
    epochs: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any] | None,
    evaluation: Mapping[str, Any] | None,
    settings: TrainingSettings | Mapping[str, Any],
) -> AdviceReport:
    """What to try after a run. ``epochs``: its epoch events in order (other events are skipped);
    ``summary``/``evaluation``: as the run wrote them (None when missing); ``settings``: what it ran with."""
    summary = dict(summary or {})
    status = summary.get("status")
    if status is None:
        return AdviceReport([], "the run has not finished: advice comes from its finished curves and evaluation")
    if isinstance(settings, Mapping):
        try:
            settings = TrainingSettings(**settings)
        except ValidationError as exc:
            return AdviceReport([], f"the run's settings are no longer valid ({exc.error_count()} problem(s)), so no setting can be suggested")
    run = _Run.of(epochs, summary, evaluation or {}, settings)
    if status == "failed" and not run.diverged:
        return AdviceReport([], f"the run failed ({summary.get('message') or 'no message'}): fix that first")
    items: list[Advice] = []
    for rule in _RULES:
        advice = rule(run)
        if advice is not None and (advice.changes or advice.rule in _WITHOUT_CHANGES_OK):
            items.append(advice)
            if advice.rule in _HIDES_CURVE_RULES:
                run.curve_explained = True
    if not items:
        return AdviceReport([], "nothing stands out: the losses fall steadily, the validation metric levelled off "
                                "before the last epoch and the data checks pass")
    return AdviceReport(items)


def advise_run_dir(run_dir: str | Path) -> AdviceReport:
    """:func:`advise` on a run directory's files (metrics.jsonl, summary.json, evaluation.json, settings.yaml)."""
    from visiontrain.training.events import read_metrics

    run_dir = Path(run_dir)
    if not (run_dir / "settings.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no settings.yaml): give the --out of a `visiontrain train`")
    settings = yaml.safe_load((run_dir / "settings.yaml").read_text(encoding="utf-8")) or {}
    summary = _read_json(run_dir / "summary.json")
    evaluation = _read_json(run_dir / "evaluation.json")
    epochs = [e for e in read_metrics(run_dir) if e.get("type") == "epoch"]
    return advise(epochs, summary, evaluation, settings)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


# --- the run as the rules read it


@dataclass
class _Run:
    settings: TrainingSettings
    task: str
    monitor: str
    head: list[Mapping[str, Any]]
    fine_tune: list[Mapping[str, Any]]
    summary: dict[str, Any]
    evaluation: Mapping[str, Any]
    diverged: bool
    curve_explained: bool = False  # a rule about the rate fired: the curve rules after it would repeat it

    @classmethod
    def of(cls, epochs: Sequence[Mapping[str, Any]], summary: dict[str, Any], evaluation: Mapping[str, Any],
           settings: TrainingSettings) -> "_Run":
        records = [e for e in epochs if e.get("type", "epoch") == "epoch"]
        monitor = summary.get("monitor") or next((e["monitor"] for e in records if e.get("monitor")), "val_accuracy")
        texts = [str(summary.get("message") or ""), *map(str, summary.get("warnings") or [])]
        losses = [e.get(k) for e in records for k in ("train_loss", "val_loss")]
        diverged = any("not finite" in t or "training loss became" in t for t in texts) or any(
            isinstance(v, float) and not math.isfinite(v) for v in losses)
        return cls(settings=settings, task=str(summary.get("task") or "classification"), monitor=monitor,
                   head=[e for e in records if e.get("stage", "head") == "head"],
                   fine_tune=[e for e in records if e.get("stage") == "fine_tune"],
                   summary=summary, evaluation=evaluation, diverged=diverged)

    def series(self, key: str, stage: str = "head") -> list[float]:
        rows = self.head if stage == "head" else self.fine_tune
        return [float(e[key]) for e in rows if isinstance(e.get(key), (int, float)) and math.isfinite(e[key])]

    @property
    def rate(self) -> float | None:
        """The head's learning rate: as set, or (``learning_rate: auto``) the one the run found, which its first
        epoch reports (warm-up ends there, before any decay)."""
        if self.settings.learning_rate != "auto":
            return float(self.settings.learning_rate)
        return next((float(e["learning_rate"]) for e in self.head if isinstance(e.get("learning_rate"), (int, float))), None)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.summary.get("class_counts") or {}

    @property
    def applies(self) -> set[str]:
        """The settings this task reads (a detector has no classification head)."""
        if self.task == "detection":
            return set(TrainingSettings.model_fields) - set(TrainingSettings.field_groups()["Head"])
        return set(TrainingSettings.model_fields) - set(TrainingSettings.field_groups()["Detection"])

    def propose(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``changes`` clamped to each field's bounds, with what they force (a fine-tuning rate at most a tenth of
        the head's), keeping only those that change something, apply to the task and validate with the rest."""
        current = self.settings.model_dump()
        proposed = {k: _clamp(k, v) for k, v in changes.items() if k in self.applies}
        merged = {**current, **proposed}
        head_rate = merged["learning_rate"] if merged["learning_rate"] != "auto" else self.rate
        if merged["fine_tune"] and head_rate and (merged["fine_tune_learning_rate"] or 0) > head_rate / 10:
            proposed["fine_tune_learning_rate"] = _round(head_rate / 10)
        if merged["fine_tune"] and merged["retrained_layers"] < 1:
            proposed["retrained_layers"] = TrainingSettings.model_fields["retrained_layers"].default
        proposed = {k: v for k, v in proposed.items() if v != current[k]}
        try:
            TrainingSettings(**{**current, **proposed})
        except ValidationError:
            return {}
        return proposed

    def advice(self, rule: str, title: str, evidence: str, why: str, changes: Mapping[str, Any]) -> Advice:
        proposed = self.propose(changes)
        current = self.settings.model_dump(mode="json")
        return Advice(rule=rule, title=title, evidence=evidence, why=why, changes=proposed,
                      current={k: current[k] for k in proposed})


def _bound(name: str, attr: str) -> Any:
    """A field's bound (``ge``, ``le``, ``gt``, ``lt``) as TrainingSettings declares it, or None; a field that
    also takes a word (``learning_rate: auto``) declares it on its number's type."""
    info = TrainingSettings.model_fields[name]
    constraints = list(info.metadata)
    for arg in get_args(info.annotation):
        for extra in get_args(arg)[1:]:  # Annotated[float, Field(gt=...)] inside the union
            constraints += list(getattr(extra, "metadata", []))
    return next((getattr(m, attr) for m in constraints if getattr(m, attr, None) is not None), None)


def _upper(name: str) -> Any:
    return _bound(name, "le")


def _clamp(name: str, value: Any) -> Any:
    """``value`` within the field's closed bounds; numbers rounded to 3 significant digits (an open bound is
    left to the validation in ``propose``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    low, high = _bound(name, "ge"), _bound(name, "le")
    value = value if low is None else max(value, low)
    value = value if high is None else min(value, high)
    return value if isinstance(value, int) else _round(value)


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def _best_is_last(metric: list[float]) -> bool:
    """The last epoch is the first to reach the best value (a tie with an earlier epoch is a plateau)."""
    return bool(metric) and max(range(len(metric)), key=metric.__getitem__) == len(metric) - 1


def _num(value: float) -> str:
    return f"{value:.3g}"


def _rate(run: _Run) -> str:
    return f"{run.rate:g}" + (" (found by learning_rate: auto)" if run.settings.learning_rate == "auto" else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("x") else f"{n} {word}s"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _metric_name(monitor: str) -> str:
    return {"val_accuracy": "validation accuracy", "val_map": "validation mAP", "val_map50": "validation mAP@0.5"}.get(
        monitor, monitor.replace("_", " "))


# --- the rules (each returns None when it does not apply)


def _rate_too_high(run: _Run) -> Advice | None:
    s = run.settings
    if run.rate is None:
        return None
    changes = {"learning_rate": run.rate / RATE_FACTOR}
    if s.gradient_clip_norm == 0:
        changes["gradient_clip_norm"] = SUGGESTED_CLIP_NORM
    why = (f"a rate {RATE_FACTOR:g} times lower takes smaller steps; clipping the gradient keeps single bad batches "
           "from throwing the weights off (`visiontrain lr-find` measures a good rate on your data in seconds)")
    if run.diverged:
        return run.advice("learning_rate_too_high", "The learning rate is too high: the loss diverged",
                          f"the training loss stopped being a finite number at learning rate {_rate(run)}", why, changes)
    train, val = run.series("train_loss"), run.series("val_loss")
    jumping = _loss_jumps(run, train, val)
    if jumping:
        return run.advice("learning_rate_too_high", "The learning rate looks too high: the loss jumps instead of falling",
                          jumping, why, changes)
    chance = _chance_loss(run)
    if val and chance and val[0] >= GUESS_MULTIPLE * chance:
        return run.advice(
            "learning_rate_too_high", "The learning rate looks too high: the predictions are wildly overconfident",
            f"after the first epoch at learning rate {_rate(run)} the validation loss is {_num(val[0])}, "
            f"{val[0] / chance:.0f} times the {_num(chance)} of a guess from the class shares", why, changes)
    return None


def _loss_jumps(run: _Run, train: list[float], val: list[float]) -> str | None:
    """The evidence that the first epochs' loss jumps rather than falls, or None."""
    if len(train) < EARLY_EPOCHS or len(val) < EARLY_EPOCHS:
        return None
    window, first = train[:EARLY_EPOCHS], train[0]
    halved = window[-1] <= first * (1 - EARLY_FALL)
    rises = [(i + 1, b / a - 1) for i, (a, b) in enumerate(zip(window, window[1:])) if a > 0 and b > a * (1 + UNSTEADY_RISE)]
    blowup = max(val[1:EARLY_EPOCHS]) / val[0] if val[0] > 0 else 0.0
    if halved or not (rises or blowup >= VAL_LOSS_BLOWUP):
        return None
    signs = []
    if rises:
        epoch, rise = rises[0]
        signs.append(f"rose by {rise:.0%} in epoch {epoch + 1}")
    if blowup >= VAL_LOSS_BLOWUP:
        signs.append(f"the validation loss grew {blowup:.1f}x from epoch 1 ({_num(val[0])} → {_num(max(val[1:EARLY_EPOCHS]))})")
    start = f"over the first {EARLY_EPOCHS} epochs at learning rate {_rate(run)} the training loss"
    if rises:
        return f"{start} went from {_num(first)} to {_num(window[-1])} (a good rate at least halves it) and " + " and ".join(signs)
    return f"{start} only went from {_num(first)} to {_num(window[-1])} while {signs[0]}"


def _rate_too_low(run: _Run) -> Advice | None:
    if run.curve_explained:
        return None
    train, metric = run.series("train_loss"), run.series(run.monitor)
    if len(train) < EARLY_EPOCHS or len(metric) != len(train) or train[0] <= 0:
        return None
    window = train[:SLOPE_EPOCHS]
    fall = 1 - (window[-1] / window[0]) ** (1 / (len(window) - 1)) if window[-1] > 0 else 1.0
    if fall >= SLOW_FALL_PER_EPOCH or not _best_is_last(metric) or run.rate is None:
        return None
    return run.advice(
        "learning_rate_too_low", "The learning rate looks too low: the loss falls very slowly",
        f"at learning rate {_rate(run)} the training loss fell by only {fall:.1%} per epoch over the first "
        f"{len(window)} epochs ({_num(window[0])} → {_num(window[-1])}), and the {_metric_name(run.monitor)} was still at its "
        f"best in the last epoch ({_pct(metric[-1])})",
        f"a rate {RATE_FACTOR:g} times higher gets there in far fewer epochs (`visiontrain lr-find` measures a good rate "
        "on your data in seconds)",
        {"learning_rate": run.rate * RATE_FACTOR},
    )


def _overfitting(run: _Run) -> Advice | None:
    if run.curve_explained:
        return None
    train, val, metric = run.series("train_loss"), run.series("val_loss"), run.series(run.monitor)
    if len(val) < EARLY_EPOCHS or len(train) != len(val) or val[-1] <= 0:
        return None
    ratio = train[-1] / val[-1]
    compared = f"{1 / ratio:.0f} times lower than" if 0 < ratio < 0.1 else f"{ratio:.0%} of"
    lowest = min(val)
    rise = val[-1] / lowest - 1 if lowest > 0 else 0.0
    fall = max(metric) - metric[-1] if metric else 0.0
    if ratio >= OVERFIT_LOSS_RATIO or (rise < VAL_LOSS_RISE and fall < METRIC_FALL):
        return None
    s = run.settings
    signs = []
    if rise >= VAL_LOSS_RISE:
        signs.append(f"the validation loss rose {rise:.0%} above its lowest ({_num(lowest)} → {_num(val[-1])})")
    if fall >= METRIC_FALL:
        signs.append(f"the {_metric_name(run.monitor)} fell from its best {_pct(max(metric))} to {_pct(metric[-1])}")
    changes: dict[str, Any] = {}
    if s.augmented_copies < _upper("augmented_copies"):
        changes["augmented_copies"] = s.augmented_copies + 1
    if run.task != "detection" and s.dropout < OVERFIT_DROPOUT:
        changes["dropout"] = OVERFIT_DROPOUT
    elif len(changes) < 2:
        changes["weight_decay"] = max(s.weight_decay, 1e-5) * WEIGHT_DECAY_FACTOR
    return run.advice(
        "overfitting", "The model learns the training images by heart (overfitting)",
        f"in the last epoch the training loss ({_num(train[-1])}) is {compared} the validation loss ({_num(val[-1])}), and "
        + " and ".join(signs),
        "more augmented copies show each image in more ways (each copy goes through the backbone once, then comes from "
        "the feature cache); dropout and weight decay keep the head from memorising single images",
        changes,
    )


def _chance_loss(run: _Run) -> float | None:
    """The loss of a guess from the class shares alone: what a head that learned nothing scores."""
    train = run.counts.get("train") or {}
    images = (run.summary.get("counts") or {}).get("train_images") or 0
    total = sum(train.values())
    if run.task == "classification" and total > 0:
        return -sum(n / total * math.log(n / total) for n in train.values() if n > 0)
    if run.task == "tagging" and images > 0 and train:
        def entropy(p: float) -> float:
            return 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))
        return sum(entropy(n / images) for n in train.values()) / len(train)
    return None  # a detector's loss has no such baseline


def _underfitting(run: _Run) -> Advice | None:
    if run.curve_explained:
        return None
    chance = _chance_loss(run)
    train, metric = run.series("train_loss"), run.series(run.monitor)
    if chance is None or chance <= 0 or not train or len(metric) != len(train):
        return None
    if len(train) < PLATEAU_EPOCHS or train[-PLATEAU_EPOCHS] <= 0:
        return None
    best = max(range(len(metric)), key=metric.__getitem__)
    share = train[best] / chance
    levelled = 1 - train[-1] / train[-PLATEAU_EPOCHS] < PLATEAU_FALL
    if share < UNDERFIT_LOSS_SHARE or not levelled:
        return None
    s = run.settings
    changes: dict[str, Any] = {}
    if s.head_layers == 0:
        changes["head_layers"] = 1
    if not s.fine_tune:
        changes["fine_tune"] = True
    elif s.retrained_layers < _upper("retrained_layers"):
        changes["retrained_layers"] = s.retrained_layers + 2
    if not changes and s.backbone in LARGER_OFFLINE_BACKBONE:
        changes["backbone"] = LARGER_OFFLINE_BACKBONE[s.backbone]
    reasons = {"head_layers": "a hidden layer lets the head combine features",
               "fine_tune": "fine-tuning adapts the backbone's last blocks to your images",
               "retrained_layers": "retraining more backbone blocks adapts more of it to your images",
               "backbone": "a larger backbone sees more detail"}
    return run.advice(
        "underfitting", "The model does not fit even its training images (underfitting)",
        f"the training loss levelled off at {_num(train[-1])}; at the best epoch ({best + 1}) it was {share:.0%} of the "
        f"{_num(chance)} a guess from the class shares scores, with the {_metric_name(run.monitor)} at {_pct(metric[best])}",
        "; ".join(reasons[k] for k in changes if k in reasons) or "the head and backbone are at their largest: more images help most",
        changes,
    )


def _still_improving(run: _Run) -> Advice | None:
    if run.curve_explained:
        return None
    s = run.settings
    metric = run.series(run.monitor)
    if len(metric) < s.epochs or len(metric) <= STILL_RISING_EPOCHS:
        return None
    gain = metric[-1] - metric[-1 - STILL_RISING_EPOCHS]
    if not _best_is_last(metric) or gain < max(s.min_delta, 1e-9):
        return None
    return run.advice(
        "still_improving", "It was still improving when the epochs ran out",
        f"the {_metric_name(run.monitor)} rose {gain * 100:.1f} points over the last {STILL_RISING_EPOCHS} of {s.epochs} "
        f"epochs and was at its best in the last one ({_pct(metric[-1])})",
        "more epochs let it go on; early stopping ends the run once it stops gaining, so a higher limit costs nothing",
        {"epochs": s.epochs * EPOCHS_FACTOR},
    )


def _fine_tune_no_gain(run: _Run) -> Advice | None:
    if not run.fine_tune or run.summary.get("best_stage") != "head":
        return None
    head, tuned = run.series(run.monitor), run.series(run.monitor, "fine_tune")
    if not head or not tuned:
        return None
    seconds = (run.summary.get("timings") or {}).get("fine_tune")
    cost = f"; it took {seconds:.1f} s" if isinstance(seconds, (int, float)) and seconds < 10 else (f"; it took {seconds:.0f} s" if isinstance(seconds, (int, float)) else "")
    return run.advice(
        "fine_tune_no_gain", "Fine-tuning did not beat the head alone",
        f"the best {_metric_name(run.monitor)} while fine-tuning was {_pct(max(tuned))} against the head's {_pct(max(head))}, so "
        f"the head's checkpoint was kept{cost}",
        f"without fine-tuning the run is much faster for the same model; to keep trying it, lower fine_tune_learning_rate "
        f"(now {_rate_text(run.settings.fine_tune_learning_rate)}) instead",
        {"fine_tune": False},
    )


def _confused_pairs(run: _Run) -> Advice | None:
    if run.curve_explained:
        return None  # an untrained model confuses everything: the rate is the thing to fix
    matrix = run.evaluation.get("confusion_matrix")
    classes = run.evaluation.get("classes") or []
    if run.task != "classification" or not isinstance(matrix, list) or len(matrix) != len(classes):
        return None
    support = [sum(row) for row in matrix]
    pairs = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            errors = matrix[i][j] + matrix[j][i]
            images = support[i] + support[j]
            if images and errors >= CONFUSED_MIN_ERRORS and errors / images >= CONFUSED_SHARE:
                pairs.append((errors / images, errors, images, i, j))
    if not pairs:
        return None
    pairs.sort(reverse=True)
    named = "; ".join(f"{classes[i]} and {classes[j]}: {errors} of {images} validation images ({share:.0%}; "
                      f"{matrix[i][j]} {classes[i]} taken for {classes[j]}, {matrix[j][i]} the other way)"
                      for share, errors, images, i, j in pairs[:MAX_NAMED])
    s = run.settings
    changes: dict[str, Any] = {"fine_tune": True} if not s.fine_tune else {"retrained_layers": s.retrained_layers + 2}
    return run.advice(
        "confused_pairs", "Some classes are mistaken for each other", named,
        "fine-tuning lets the backbone learn the details that tell them apart; look at the mistakes on the evaluation "
        "page too: wrong labels and more images of the two classes help most",
        changes,
    )


def _weak_concepts(run: _Run) -> Advice | None:
    if run.curve_explained:
        return None
    rows = run.evaluation.get("per_class" if run.task == "detection" else "per_concept")
    key = "ap50" if run.task == "detection" else "ap"
    if run.task not in ("tagging", "detection") or not isinstance(rows, list):
        return None
    # The best-supported first: their AP is measured on the most images, so it is the one to trust.
    weak = sorted((r for r in rows if isinstance(r.get(key), (int, float)) and r.get("support") and r[key] < WEAK_AP),
                  key=lambda r: (-r["support"], r[key]))
    if not weak:
        return None
    what = "box" if run.task == "detection" else "validation image"
    named = ", ".join(f"{r['concept']} {r[key]:.2f} ({_plural(r['support'], what)})" for r in weak[:MAX_NAMED])
    more = f" and {len(weak) - MAX_NAMED} more" if len(weak) > MAX_NAMED else ""
    s = run.settings
    changes: dict[str, Any] = {}
    if s.augmented_copies < _upper("augmented_copies"):
        changes["augmented_copies"] = s.augmented_copies + 1
    return run.advice(
        "weak_concepts", "Some concepts are found poorly",
        f"average precision {'at IoU 0.5 ' if run.task == 'detection' else ''}below {WEAK_AP:g}: {named}{more}",
        "showing each image in more augmented ways helps a concept with few examples (weighting rare concepts is the "
        "imbalance advice's); more annotated images of it help most",
        changes,
    )


def _imbalance(run: _Run) -> Advice | None:
    train = {k: v for k, v in (run.counts.get("train") or {}).items() if v > 0}
    if run.task == "detection" or len(train) < 2:
        return None  # a detector has no loss weighting; its rare concepts show as weak concepts
    (small, few), (large, many) = min(train.items(), key=lambda kv: kv[1]), max(train.items(), key=lambda kv: kv[1])
    ratio = many / few
    if ratio < IMBALANCE_RATIO or run.settings.balance_concepts:
        return None
    recall = next((r.get("recall") for r in run.evaluation.get("per_class" if run.task == "classification" else "per_concept") or []
                   if r.get("class", r.get("concept")) == small and r.get("support")), None)  # no images: no recall
    said = f"; its validation recall is {_pct(recall)}" if isinstance(recall, (int, float)) else ""
    return run.advice(
        "imbalance", "The concepts are imbalanced",
        f"{large} has {many} training images, {small} {few} ({ratio:.1f}x fewer){said}",
        "weighting each concept by its rarity makes a rare concept count as much as a common one; more images of it help most",
        {"balance_concepts": True},
    )


def _few_validation_images(run: _Run) -> Advice | None:
    val = run.counts.get("val") or {}
    train = run.counts.get("train") or {}
    if not val:
        return None
    small, few = min(val.items(), key=lambda kv: kv[1])
    if few >= MIN_VALIDATION_IMAGES_PER_CONCEPT:
        return None
    evidence = (f"{small} has no validation image, so its score cannot be measured" if few == 0 else
                f"{small} has {_plural(few, 'validation image')}: one image moves its score by {100 / few:.0f} points")
    evidence += f" (at least {MIN_VALIDATION_IMAGES_PER_CONCEPT} make it trustworthy"
    below = sum(1 for n in val.values() if n < MIN_VALIDATION_IMAGES_PER_CONCEPT)
    evidence += f"; {below} of {len(val)} concepts have fewer)" if below > 1 else ")"
    total = few + train.get(small, 0)
    needed = MIN_VALIDATION_IMAGES_PER_CONCEPT / total if total else 1.0
    split = min(MAX_SUGGESTED_SPLIT, math.ceil(needed * 20) / 20)  # in steps of 0.05
    leaves = total - math.ceil(total * split)
    s = run.settings
    if not _split_by_the_run(run):
        return Advice("few_validation_images", "Too few validation images to trust the score", evidence,
                      f"the validation images were given (a validation folder or file), so validation_split does not apply: "
                      f"add images of {small} to them")
    if split <= s.validation_split or leaves < MIN_TRAINING_IMAGES_PER_CONCEPT:
        return Advice("few_validation_images", "Too few validation images to trust the score", evidence,
                      f"a larger split would leave too few images of {small} to train on: annotate more images of it")
    return run.advice(
        "few_validation_images", "Too few validation images to trust the score", evidence,
        f"a split of {split:g} keeps about {math.floor(total * split)} images of {small} for validation and {leaves} for training "
        "(on the platform, re-split the view: its split decides after the first version); more images help most",
        {"validation_split": split},
    )


def _split_by_the_run(run: _Run) -> bool:
    """Whether validation_split made this run's validation set: its share of the images is the setting's, up
    to the stratified split's rounding (half an image per concept). A given validation set rarely lands there;
    where it does, the advice to raise the split is still what would help."""
    counts = run.summary.get("counts") or {}
    train, val = counts.get("train_images") or 0, counts.get("val_images") or 0
    concepts = len(run.counts.get("val") or {}) or 1
    if not train + val:
        return True
    tolerance = max(SPLIT_SHARE_TOLERANCE, concepts / (train + val))
    return abs(val / (train + val) - run.settings.validation_split) <= tolerance


_RULES = (_rate_too_high, _rate_too_low, _overfitting, _underfitting, _still_improving, _fine_tune_no_gain,
          _confused_pairs, _weak_concepts, _imbalance, _few_validation_images)
# A wrong rate shapes the whole curve: after it, the curve rules would describe the same thing again.
_HIDES_CURVE_RULES = {"learning_rate_too_high", "learning_rate_too_low"}
# Advice worth giving even when no setting can help (the fix is more data).
_WITHOUT_CHANGES_OK = {"few_validation_images", "confused_pairs", "weak_concepts"}


def _rate_text(rate: float | None) -> str:
    return "a tenth of the head's" if rate is None else f"{rate:g}"
