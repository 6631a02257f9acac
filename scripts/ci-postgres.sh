#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the test suite and print its URL on stdout (last line).
#
#   export VISIONTRAIN_TEST_POSTGRES_URL="$(scripts/ci-postgres.sh)"
#   scripts/ci-postgres.sh stop DIR     # stops the server started in DIR (printed on stderr) and removes DIR
#
# With $VISIONTRAIN_PG_STATE_FILE set, DIR is written to that file as soon as it exists, so a caller
# can stop and remove the server on exit even when the start failed half-way (.ci/run does).
#
# On a fresh Debian machine it installs PostgreSQL with apt when initdb/pg_ctl are missing. The
# cluster lives in a new temporary directory, listens on 127.0.0.1 at a free port (or
# $VISIONTRAIN_PG_PORT), trusts local connections (test use only) and has one database, visiontrain_test.
set -euo pipefail

log() { echo "ci-postgres: $*" >&2; }

find_bin() {  # pg binaries: on PATH, else Debian's versioned directory
    local name=$1
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/$name" ]]; then echo "$dir/$name"; fi
}

as_db_user() {  # initdb and postgres refuse to run as root
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ "${1:-}" == "stop" ]]; then
    dir=${2:?usage: ci-postgres.sh stop DIR}
    pg_ctl=$(find_bin pg_ctl)
    if [[ -n "$pg_ctl" && -d "$dir/data" ]] && as_db_user "$pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_db_user "$pg_ctl" -D "$dir/data" -m fast -w stop >&2
    fi
    rm -rf "$dir"
    log "stopped; removed $dir"
    exit 0
fi

if [[ -z "$(find_bin initdb)" || -z "$(find_bin pg_ctl)" ]]; then
    log "PostgreSQL not found; installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
INITDB=$(find_bin initdb)
CREATEDB=$(dirname "$(readlink -f "$(find_bin pg_ctl)")")/createdb  # beside pg_ctl: same version
PG_CTL=$(find_bin pg_ctl)
[[ -n "$INITDB" && -n "$PG_CTL" ]] || { log "initdb/pg_ctl still missing after install"; exit 1; }

if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

port=${VISIONTRAIN_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
dir=$(mktemp -d -t visiontrain-pg.XXXXXX)
[[ -n "${VISIONTRAIN_PG_STATE_FILE:-}" ]] && echo "$dir" >"$VISIONTRAIN_PG_STATE_FILE"
chmod 755 "$dir"
[[ $(id -u) -eq 0 ]] && chown postgres "$dir"

log "initialising a cluster in $dir/data"
as_db_user "$INITDB" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
log "starting it on 127.0.0.1:$port"
as_db_user "$PG_CTL" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
as_db_user "$CREATEDB" -h 127.0.0.1 -p "$port" -U postgres visiontrain_test
log "running; stop it with: $0 stop $dir"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/visiontrain_test"
