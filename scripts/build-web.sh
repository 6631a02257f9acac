#!/usr/bin/env bash
# Builds the web studio into src/visiontrain/web/static/dist/ (served by `visiontrain serve`).
# Installs the pinned npm packages once (package-lock.json); after that it works offline in a few seconds.
set -euo pipefail
cd "$(dirname "$0")/../web"
if ! command -v node >/dev/null 2>&1; then
  echo "build-web: node (>= 18) is needed to build the web studio; install nodejs and npm" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node build.mjs
