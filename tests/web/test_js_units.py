"""The studio's pure JavaScript (settings-form logic, chart series) under Node's own test runner,
fed the real settings schema from TrainingSettings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from visiontrain.settings import TrainingSettings

WEB = Path(__file__).resolve().parents[2] / "web"


def test_javascript_units_pass_on_the_real_settings_schema(tmp_path: Path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the studio (build and tests): install nodejs")
    schema = tmp_path / "settings-schema.json"
    schema.write_text(json.dumps({
        "schema": TrainingSettings.model_json_schema(),
        "groups": TrainingSettings.field_groups(),
        "defaults": TrainingSettings().model_dump(mode="json"),
    }))
    tests = sorted(str(p) for p in (WEB / "tests").glob("*.test.mjs"))
    result = subprocess.run(
        [node, "--test", *tests], cwd=WEB, capture_output=True, text=True, timeout=120,
        env={**os.environ, "VISIONTRAIN_SETTINGS_SCHEMA": str(schema)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 7" in result.stdout, result.stdout[-1500:]
