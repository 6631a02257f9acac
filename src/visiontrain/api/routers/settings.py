from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Query

from visiontrain.api.deps import TokenDep
from visiontrain.api.schemas.training import SettingsSchema
from visiontrain.services.errors import InvalidInput
from visiontrain.settings import TASK_DEFAULTS, TrainingSettings
from visiontrain.tasks import task_names

router = APIRouter(prefix="/settings", tags=["settings"])


def not_applicable(task: str) -> list[str]:
    """The settings that do nothing for ``task`` (a form hides them; the API still takes them, and the
    version stores them as they came): a detector has no classification head and sizes its images by
    shorter_side/longer_side; only detection reads the Detection group; only classification smooths its labels."""
    groups = TrainingSettings.field_groups()
    if task == "detection":
        return [*groups["Head"], "image_size", "resize_mode"]
    names = list(groups["Detection"])
    if task != "classification":
        names.append("label_smoothing")
    return names


def task_schema(task: str) -> SettingsSchema:
    """The schema as ``task`` uses it: its own defaults (in ``defaults`` and each property's ``default``)
    and only the fields that apply to it in ``groups``."""
    overrides = TASK_DEFAULTS.get(task, {})
    schema: dict[str, Any] = copy.deepcopy(TrainingSettings.model_json_schema())
    for name, value in overrides.items():
        schema["properties"][name] = {**schema["properties"][name], "default": value}
    hidden = set(not_applicable(task))
    groups = {group: [n for n in names if n not in hidden] for group, names in TrainingSettings.field_groups().items()}
    return SettingsSchema(
        json_schema=schema,
        groups={group: names for group, names in groups.items() if names},
        defaults=TrainingSettings().with_task_defaults(task).model_dump(mode="json"),
        task=task,
        task_defaults=dict(overrides),
        not_applicable=[n for n in TrainingSettings.model_fields if n in hidden],
    )


@router.get(
    "/schema",
    response_model=SettingsSchema,
    response_model_by_alias=True,
    response_model_exclude_unset=True,
    summary="Every training setting: JSON schema (types, bounds, descriptions), groups and defaults",
    description="Enough to render a settings form: `schema.properties[name]` has `description`, `default`, "
    "bounds and `group`; `groups` orders the fields by group. With `task` (classification, tagging, detection), "
    "the form of that task: `defaults` and each property's `default` are the task's own (what a version of it "
    "gets for a setting left out), `groups` lists only the settings that apply to it, `task_defaults` names "
    "where the task's defaults differ from the shared ones and `not_applicable` the settings it ignores.",
)
def settings_schema(
    _token: TokenDep,
    task: Annotated[str | None, Query(max_length=40, description="classification, tagging or detection")] = None,
) -> SettingsSchema:
    if task is None:
        return SettingsSchema(
            json_schema=TrainingSettings.model_json_schema(),
            groups=TrainingSettings.field_groups(),
            defaults=TrainingSettings().model_dump(mode="json"),
        )
    if task not in task_names():
        raise InvalidInput(f"unknown task {task!r}: one of {', '.join(task_names())}", loc=("query", "task"))
    return task_schema(task)
