"""Every optimizer and schedule builds and steps; warm-up rises linearly through the first epoch."""

from __future__ import annotations

import pytest
import torch

from visiontrain.settings import TrainingSettings
from visiontrain.training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_schedule, warmup_factor


def _tiny_problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    inputs, targets = torch.randn(16, 4), torch.randint(0, 2, (16,))
    return model, inputs, targets


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_reduces_the_loss(name):
    model, inputs, targets = _tiny_problem()
    settings = TrainingSettings(optimizer=name, learning_rate=0.5 if name == "adadelta" else 0.05)
    optimizer = build_optimizer(model.parameters(), settings.learning_rate, settings)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * 0.95, (name, losses[0], losses[-1])


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_builds_and_steps(name):
    model, *_ = _tiny_problem()
    settings = TrainingSettings(schedule=name, schedule_patience=0, step_size=1, schedule_factor=0.5, gamma=0.8)
    optimizer = build_optimizer(model.parameters(), 0.1, settings)
    config = build_schedule(optimizer, settings)
    if name == "none":
        assert config is None
        return
    scheduler = config["scheduler"]
    for _ in range(3):
        optimizer.step()
        if name == "on_plateau":
            scheduler.step(0.5)  # a flat validation accuracy
        else:
            scheduler.step()
    rate = optimizer.param_groups[0]["lr"]
    expected = {"step": 0.1 * 0.5**3, "exponential": 0.1 * 0.8**3, "on_plateau": 0.1 * 0.5**2}[name]
    assert rate == pytest.approx(expected)
    if name == "on_plateau":
        assert config["monitor"] == "val_accuracy" and scheduler.mode == "max"


def test_warmup_is_linear_and_ends_at_the_full_rate():
    factors = [warmup_factor(i, 8) for i in range(8)]
    assert factors == pytest.approx([(i + 1) / 8 for i in range(8)])
    assert warmup_factor(20, 8) == 1.0
    assert warmup_factor(0, 1) == 1.0
