"""The studio's pure JavaScript (settings-form logic, chart series) under Node's own test runner,
fed the real settings schema from TrainingSettings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from visiontrain.settings import TrainingSettings

WEB = Path(__file__).resolve().parents[2] / "web"
DECLARED = re.compile(r"""^\s*(?:test|it)\(\s*(["'`])(.+?)\1""", re.MULTILINE)  # test("name", ...) in *.test.mjs
PASSED = re.compile(r"^\s*ok \d+ - (.+?)(?:\s+#.*)?$", re.MULTILINE)  # TAP lines of passed tests
SUMMARY = re.compile(r"^# (tests|suites|pass|fail|cancelled|skipped|skip|todo) (\d+)$", re.MULTILINE)


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
    # Every test declared in the sources ran and passed (a count typed here would miss a file or a test
    # that silently stopped loading, and go stale with every new test).
    declared = sorted(name for path in tests for _, name in DECLARED.findall(Path(path).read_text()))
    passed = sorted(name.strip() for name in PASSED.findall(result.stdout))
    assert declared and passed == declared, (declared, result.stdout[-1500:])
    summary = dict(SUMMARY.findall(result.stdout))
    assert summary == {**summary, "tests": str(len(declared)), "pass": str(len(declared)), "fail": "0"}, summary
    assert summary.get("skipped", summary.get("skip", "0")) == "0" and summary.get("todo", "0") == "0", summary
