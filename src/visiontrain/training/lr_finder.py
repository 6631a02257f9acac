"""The learning-rate range test: the specification's recipe (start high, lower the rate until the loss
falls steadily) in its modern form, on the head, over cached backbone features, in seconds.

A fresh head (started as training starts it) takes one step per mini-batch while the rate rises
exponentially from ``start`` to ``end``; the loss is smoothed (exponential average, bias-corrected)
and the test stops once it has blown up to four times its best. The suggestion follows one stated
rule, chosen because the usual ones are unstable on short, noisy curves: the rate where the smoothed
loss falls fastest against log(rate) ("steepest descent"), looked for only below the rate of the
lowest loss and once the average has settled (its first ten steps move with each batch), and never
above a tenth of that rate (the loss is about to turn there). ``learning_rate: auto`` runs the same
test at the start of a run (``runner``), on a copy of the fresh head. Writes
``lr_find.json`` (rates, losses, the rule and the suggestion) and ``lr_find.png``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from visiontrain.data.dataset import DatasetSpec
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings
from visiontrain.training.feature_store import FeatureCacheLocation

RESULT_FILE = "lr_find.json"
PICTURE_FILE = "lr_find.png"
SMOOTHING = 0.9
BLOW_UP = 4.0
SETTLING_STEPS = round(1 / (1 - SMOOTHING))  # the average's memory, in steps


def find_learning_rate(settings: TrainingSettings | dict[str, Any] | None, data: DatasetSpec | str | Path, out_dir: str | Path, *,
                       task: str | None = None, cache_dir: str | Path | FeatureCacheLocation | None = None,
                       start: float = 1e-6, end: float = 1.0, steps: int = 100) -> dict[str, Any]:
    """Run the range test on ``data``'s training images; returns (and writes) the curve and the suggestion."""
    import lightning as L

    from visiontrain.models.classifier import build_network
    from visiontrain.models.preprocessing import resolve_preprocessing
    from visiontrain.tasks import get_task
    from visiontrain.training.events import EventSink
    from visiontrain.training.runner import _load_spec, _Run, as_settings
    from visiontrain.training.trainer import resolve_device

    if not 0 < start < end:
        raise DataError(f"the range must rise: start {start:g} must be above 0 and below end {end:g}")
    task_name = data.task if isinstance(data, DatasetSpec) else (task or "classification")
    the_task = get_task(task_name)
    if the_task.model != "head":
        raise DataError(
            f"the learning-rate range test runs on a head over cached features; a {task_name} model trains its whole "
            f"detector (its default, learning_rate {TrainingSettings.for_task(task_name, {}).learning_rate:g} with SGD, "
            "is measured in docs/benchmarks.md)"
        )
    # The test needs only the head's features (no fine-tuning inputs kept on the way).
    settings = as_settings(settings, task_name).with_task_defaults(task_name).model_copy(update={"fine_tune": False})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    sink = EventSink(out)
    try:
        run = _Run(settings, the_task, out, sink, lambda: False, FeatureCacheLocation.resolve(cache_dir), False)
        spec = _load_spec(run, data, None)
        train, val, _ = run.prepare_data(spec)
        device = resolve_device(settings, task_name)
        network = build_network(settings, len(spec.classes))
        preprocessing = resolve_preprocessing(network.backbone, image_size=settings.image_size, resize_mode=settings.resize_mode)
        train_set, _ = run.features(network, preprocessing, train, val, device)
    finally:
        sink.close()
    result = range_test(settings, the_task, network.head, train_set.features, the_task.targets(train, spec.classes),
                        train_set.sample_index, start=start, end=end, steps=steps)
    result = {"task": task_name, **result, "images": len(train)}
    write_result(result, out)
    return result


def range_test(settings: TrainingSettings, task: Any, head: torch.nn.Module, features: torch.Tensor,
               image_targets: torch.Tensor, sample_index: torch.Tensor, *, start: float = 1e-6, end: float = 1.0,
               steps: int = 100) -> dict[str, Any]:
    """The range test on ``head`` (started as training starts it; changed by the test, so pass a copy
    of one to be trained) over cached ``features`` (rows of the images ``sample_index`` names)."""
    if not 0 < start < end:
        raise DataError(f"the range must rise: start {start:g} must be above 0 and below end {end:g}")
    from visiontrain.training.optim import build_optimizer

    targets = image_targets[sample_index]
    task.initialize_head(head, image_targets)
    loss_fn = task.training_loss(settings, image_targets)
    head = head.train()
    optimizer = build_optimizer([p for p in head.parameters() if p.requires_grad], start, settings)
    loader = DataLoader(TensorDataset(features, targets), batch_size=settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(settings.seed))
    factor = (end / start) ** (1 / max(1, steps - 1))
    rates, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    batches = iter(loader)
    for step in range(steps):
        try:
            inputs, batch_targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs, batch_targets = next(batches)
        rate = start * factor**step
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = loss_fn(head(inputs).float(), batch_targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        current = average / (1 - SMOOTHING ** (step + 1))
        rates.append(rate), losses.append(value), smoothed.append(current)
        best = min(best, current)
        if current > BLOW_UP * best and step > 10:
            break
    return {"start": start, "end": end, "rates": rates, "losses": losses, "smoothed": smoothed,
            **suggest(rates, smoothed), "features": int(features.shape[0])}


def write_result(result: dict[str, Any], out: Path) -> None:
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2))
    _picture(result, out / PICTURE_FILE)


def suggest(rates: list[float], smoothed: list[float]) -> dict[str, Any]:
    """The suggested rate from a smoothed loss curve, with the rule and why (see the module's text)."""
    if len(rates) < 5:
        raise DataError(f"the range test ended after {len(rates)} steps (the loss was not finite): lower end or start")
    lowest = int(np.argmin(smoothed))
    cap = rates[lowest] / 10
    log_rates = np.log(np.asarray(rates))
    slopes = np.gradient(np.asarray(smoothed), log_rates)
    # The average's first steps still move with each batch (bias correction divides by a small number),
    # so a slope there says nothing about the rate: the search starts once the average has settled.
    settled = min(SETTLING_STEPS, max(0, lowest - 1))
    if lowest > settled:
        steepest = settled + int(np.argmin(slopes[settled:lowest]))
        suggestion = min(rates[steepest], cap)
    else:
        steepest, suggestion = 0, cap
    return {
        "suggestion": float(suggestion),
        "rule": "steepest descent of the smoothed loss below the lowest-loss rate, at most a tenth of that rate",
        "steepest_rate": float(rates[steepest]),
        "lowest_loss_rate": float(rates[lowest]),
        "reason": (f"the loss falls fastest at {rates[steepest]:.2g} and is lowest at {rates[lowest]:.2g}; "
                   f"{suggestion:.2g} is {'the steepest point' if suggestion == rates[steepest] else 'a tenth of the lowest point'}, "
                   "a rate at which it still falls steadily"),
    }


def _picture(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from visiontrain.evaluation.report import save_figure

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    axes.plot(result["rates"], result["losses"], color="#bbbbbb", linewidth=1, label="loss per step")
    axes.plot(result["rates"], result["smoothed"], color="#0072b2", linewidth=2, label="smoothed")
    axes.axvline(result["suggestion"], color="#d55e00", linestyle="--", label=f"suggested {result['suggestion']:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title("Learning-rate range test (head, cached features)")
    top = max(result["smoothed"][: max(1, len(result["smoothed"]) // 2)] + [min(result["smoothed"]) * 1.5])
    axes.set_ylim(min(result["smoothed"]) * 0.9, top * 1.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
