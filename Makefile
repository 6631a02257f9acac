# One entry point for set-up, the demo and the tests. Everything installs itself on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Pinned as DEVELOPERS.md says: these install from the local wheel cache in about a minute.
TORCH  := torch==2.14.1 torchvision==0.29.1
SHARED ?= $(abspath ../shared)
WEB_BUNDLE := src/visiontrain/web/static/dist/app.js

.PHONY: setup web demo test test-fast bench clean system-deps

setup: $(VENV)/.installed $(WEB_BUNDLE)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]' $(TORCH)
	touch $@

# The web studio bundle (esbuild over npm packages pinned in web/package-lock.json).
$(WEB_BUNDLE): $(shell find web/src -type f 2>/dev/null) web/package-lock.json web/build.mjs
	bash scripts/build-web.sh
web: $(WEB_BUNDLE)

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (browser tests)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The main job: the platform on its embedded defaults (SQLite, local files, a local worker)
# with a demo project trained on the shared ants/bees photos.
demo: setup
	$(BIN)/visiontrain demo --shared $(SHARED)

test: setup system-deps
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/python benchmarks/run.py --data $(SHARED)/datasets/ants_bees --markdown docs/benchmarks-latest.md

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info web/node_modules src/visiontrain/web/static/dist
