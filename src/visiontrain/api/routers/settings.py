from __future__ import annotations

from fastapi import APIRouter

from visiontrain.api.deps import TokenDep
from visiontrain.api.schemas.training import SettingsSchema
from visiontrain.settings import TrainingSettings

router = APIRouter(prefix="/settings", tags=["settings"])


@router.get(
    "/schema",
    response_model=SettingsSchema,
    response_model_by_alias=True,
    summary="Every training setting: JSON schema (types, bounds, descriptions), groups and defaults",
    description="Enough to render a settings form: `schema.properties[name]` has `description`, `default`, "
    "bounds and `group`; `groups` orders the fields by group.",
)
def settings_schema(_token: TokenDep) -> SettingsSchema:
    return SettingsSchema(
        json_schema=TrainingSettings.model_json_schema(),
        groups=TrainingSettings.field_groups(),
        defaults=TrainingSettings().model_dump(mode="json"),
    )
