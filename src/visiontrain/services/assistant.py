"""The experiment assistant on a view: settings suggested from its data, and the learning-rate range test.

Both read the view's images as the next version would train on them (``versions.snapshot``, nothing
written: the view's stored split, the sides the user fixed, else the split the first version would
make) and call the engine (``visiontrain.assistant``, ``training.lr_finder``); neither trains a model.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from visiontrain.assistant import DataCounts, SplitCounts, Suggestion, count_split, suggest_settings
from visiontrain.data.dataset import DatasetSpec
from visiontrain.data.errors import DataError
from visiontrain.services import versions
from visiontrain.services.errors import Conflict, InvalidInput
from visiontrain.services.platform import Platform
from visiontrain.settings import TrainingSettings, format_validation_error
from visiontrain.settings_check import settings_runnable_here
from visiontrain.store.base import Split
from visiontrain.store.models import VersionSample, View

# One range test at a time per server process: it runs the backbone over every training image once
# (then the feature cache answers), and two at once would only halve each other's speed.
_LR_FIND = threading.Lock()


def view_settings(view: View, values: dict[str, Any]) -> TrainingSettings:
    """The settings sent (partial) over the view's task's defaults, or a 422 naming the rule broken."""
    try:
        return TrainingSettings.for_task(str(view.kind), values)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc), loc=("body", "settings")) from None


def model_concepts(view: View, concepts: list[str] | None) -> list[str]:
    names = [c.name for c in view.concepts]
    if concepts is None:
        return names
    unknown = [c for c in concepts if c not in names]
    if unknown:
        raise InvalidInput(f"unknown concept(s) {', '.join(map(repr, unknown))} in view {view.id}", loc=("body", "concepts"))
    return list(dict.fromkeys(concepts))


def _samples(rows: list[VersionSample], side: Split, files: list[Path]) -> list:
    from visiontrain.jobs.worker import _sample  # the worker's reading of a snapshot row, so both read it alike

    return [_sample(file, row.annotation) for row, file in zip(rows, files) if row.split == side]


def view_counts(session: Session, *, view: View, concepts: list[str], settings: TrainingSettings) -> DataCounts:
    """The view's counts per side as the next version would see them; fixed when the user fixed validation
    images or the view has its split (a version's validation_split no longer moves images then)."""
    task = str(view.kind)

    def at(fraction: float) -> SplitCounts:
        rows, _ = versions.snapshot(session, view=view, concepts=concepts, persist=False, check=False,
                                    settings=settings.model_copy(update={"validation_split": fraction}))
        by_content = [Path(row.sha256) for row in rows]  # counting needs no file
        return count_split(concepts, _samples(rows, Split.train, by_content), _samples(rows, Split.val, by_content), task=task)

    _, data_split = versions.snapshot(session, view=view, concepts=concepts, settings=settings, persist=False, check=False)
    if data_split["source"] == "fixed":
        fixed: str | None = "the validation images you fixed"
    elif view.split_fraction is not None:
        fixed = (f"the view's split ({view.split_fraction:.0%} held out, seed {view.split_seed}; every version is judged "
                 "on it, re-split the view to change it)")
    else:
        fixed = None
    if fixed is not None:
        counts = at(settings.validation_split)
        return DataCounts(task, tuple(concepts), lambda _fraction: counts, fixed=fixed)
    return DataCounts(task, tuple(concepts), at)


def suggest_for_view(session: Session, *, view: View, concepts: list[str] | None, values: dict[str, Any]) -> Suggestion:
    """Settings suggested for the view's data (the model's ``concepts``, default all), over the settings so far."""
    names = model_concepts(view, concepts)
    settings = view_settings(view, values)
    try:
        return suggest_settings(view_counts(session, view=view, concepts=names, settings=settings), values)
    except DataError as exc:
        raise InvalidInput(str(exc), loc=("body", "concepts")) from None


def find_learning_rate_for_view(
    session: Session, *, platform: Platform, view: View, concepts: list[str] | None, values: dict[str, Any], steps: int = 100
) -> dict[str, Any]:
    """The range test on the view's training images with these settings; the features land in the server's
    feature cache, so the version trained next reuses them. Returns the engine's result (curve, suggestion, rule)."""
    from visiontrain.jobs.worker import TrainingWorker, fetch_images
    from visiontrain.tasks import get_task
    from visiontrain.training.lr_finder import find_learning_rate

    task = str(view.kind)
    if get_task(task).model != "head":
        try:
            find_learning_rate(TrainingSettings.for_task(task, {}), DatasetSpec(classes=[], train=[], task=task), platform.config.tmp_dir)
        except DataError as exc:  # the engine's own refusal, with detection's measured default
            raise InvalidInput(str(exc), loc=("path", "view_id")) from None
    names = model_concepts(view, concepts)
    settings = view_settings(view, values)
    if settings.weights_path is not None:
        raise InvalidInput("weights_path names a file on the server and cannot be set through the API; leave it empty",
                           loc=("body", "settings", "weights_path"))
    problems = settings_runnable_here(settings, task)
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), loc=("body", "settings", problems[0].field))
    rows, _ = versions.snapshot(session, view=view, concepts=names, settings=settings, persist=False)
    worker = TrainingWorker(platform)  # the worker's feature cache
    session.rollback()  # nothing was written; the test below takes seconds and must not hold the database
    if not _LR_FIND.acquire(blocking=False):
        raise Conflict("a learning-rate test is already running on this server: try again when it has finished")
    out = Path(tempfile.mkdtemp(prefix="lr-find-", dir=platform.config.tmp_dir))
    try:
        files = fetch_images(platform.blobs, [(row.blob_key, row.image_name) for row in rows], out / "images")
        spec = DatasetSpec(classes=names, train=_samples(rows, Split.train, files), val=_samples(rows, Split.val, files),
                           source=f"view {view.id}", task=task)
        return find_learning_rate(settings, spec, out, cache_dir=worker._cache_dir(), steps=steps)
    except DataError as exc:
        raise InvalidInput(str(exc), loc=("body", "settings")) from None
    finally:
        _LR_FIND.release()
        shutil.rmtree(out, ignore_errors=True)
