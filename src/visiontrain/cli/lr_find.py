"""`visiontrain lr-find DATA --out DIR [--task ...] [settings flags]`: the learning-rate range test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from visiontrain.cli.common import console, fail, user_errors
from visiontrain.cli.options import collect_overrides, with_settings_flags


@with_settings_flags
def lr_find(
    data: Path = typer.Argument(..., help="The training data, as for `visiontrain train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for lr_find.json and lr_find.png."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="classification or tagging (default: classification)."),
    start: float = typer.Option(1e-6, "--start", help="Lowest learning rate tried."),
    end: float = typer.Option(1.0, "--end", help="Highest learning rate tried."),
    steps: int = typer.Option(100, "--steps", help="Steps of the test (one mini-batch each)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache directory (as for train)."),
    cache_size_gb: Optional[float] = typer.Option(None, "--cache-size-gb", help="Size cap of the feature cache in GB (as for train)."),
    assignments: list[str] = typer.Option([], "--set", "-s", help="Override a setting: name=value (repeatable)."),
    **flags: Any,
) -> None:
    """Find a learning rate for the head: a range test on cached features, with the suggestion and its reason."""
    from visiontrain.settings import load_settings, parse_assignment
    from visiontrain.training.feature_store import FeatureCacheLocation
    from visiontrain.training.lr_finder import PICTURE_FILE, find_learning_rate

    with user_errors():
        if not data.exists():
            fail(f"data not found: {data}")
        overrides = dict(parse_assignment(a) for a in assignments)
        overrides.update(collect_overrides(flags))
        settings = load_settings(None, overrides, task=task or "classification")
        cache = FeatureCacheLocation.resolve(cache_dir, size_gb=cache_size_gb)
        result = find_learning_rate(settings, data, out, task=task, cache_dir=cache, start=start, end=end, steps=steps)
    console.print(f"suggested learning_rate: [bold]{result['suggestion']:.2g}[/]", highlight=False)
    console.print(f"why: {result['reason']} ({result['rule']})", highlight=False)
    console.print(f"curve: {out / PICTURE_FILE}; train with --learning-rate {result['suggestion']:.2g}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("lr-find", context_settings={"help_option_names": ["-h", "--help"]})(lr_find)
