"""`.ci/run` stops its throw-away PostgreSQL server when it ends, whether the tests pass or fail."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_POSTGRES = """#!/usr/bin/env bash
# Stands in for scripts/ci-postgres.sh: records start and stop.
set -euo pipefail
log="$FAKE_LOG"
if [[ "${1:-}" == "stop" ]]; then
    echo "stop $2" >>"$log"
    rm -rf "$2"
    exit 0
fi
dir="$FAKE_PG_DIR"
mkdir -p "$dir/data"
[[ -n "${VISIONTRAIN_PG_STATE_FILE:-}" ]] && echo "$dir" >"$VISIONTRAIN_PG_STATE_FILE"
echo "start $dir" >>"$log"
[[ "${FAKE_PG_FAIL:-0}" == 1 ]] && { echo "createdb failed" >&2; exit 1; }
echo "postgresql+psycopg://postgres@127.0.0.1:1/visiontrain_test"
"""

FAKE_MAKE = """#!/usr/bin/env bash
echo "make $* with $VISIONTRAIN_TEST_POSTGRES_URL" >>"$FAKE_LOG"
exit "${FAKE_MAKE_STATUS:-0}"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of .ci/run in a tree whose ci-postgres.sh and make are stand-ins."""
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy2(ROOT / ".ci" / "run", root / ".ci" / "run")
    _executable(root / "scripts" / "ci-postgres.sh", FAKE_POSTGRES)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "make", FAKE_MAKE)
    return root


def _run(checkout: Path, **env: str) -> tuple[int, list[str], Path]:
    log = checkout.parent / "log"
    pg_dir = checkout.parent / "pg"
    environment = {
        **os.environ,
        "PATH": f"{checkout.parent / 'bin'}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_PG_DIR": str(pg_dir),
        **env,
    }
    result = subprocess.run(["bash", str(checkout / ".ci" / "run")], env=environment, capture_output=True, text=True)
    return result.returncode, log.read_text().splitlines(), pg_dir


@pytest.mark.parametrize("make_status", [0, 2])
def test_the_postgres_server_is_stopped_after_the_tests_pass_or_fail(checkout, make_status):
    status, log, pg_dir = _run(checkout, FAKE_MAKE_STATUS=str(make_status))
    assert status == make_status  # the tests' verdict is kept
    assert log == [
        f"start {pg_dir}",
        "make test with postgresql+psycopg://postgres@127.0.0.1:1/visiontrain_test",
        f"stop {pg_dir}",
    ]
    assert not pg_dir.exists()


def test_a_half_started_server_is_stopped_too(checkout):
    status, log, pg_dir = _run(checkout, FAKE_PG_FAIL="1")
    assert status != 0
    assert log == [f"start {pg_dir}", f"stop {pg_dir}"]  # make never ran, the directory is gone
    assert not pg_dir.exists()
