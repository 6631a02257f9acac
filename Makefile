# One entry point for set-up, the demo and the tests. Everything installs itself on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Pinned as DEVELOPERS.md says: these install from the local wheel cache in about a minute.
TORCH  := torch==2.14.1 torchvision==0.29.1
SHARED ?= $(abspath ../shared)

.PHONY: setup demo test test-fast bench serve clean system-deps

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]' $(TORCH)
	touch $@

# The main job: the platform on its embedded defaults (SQLite, local files, a local worker)
# with a demo project trained on the shared ants/bees photos.
demo: setup
	$(BIN)/visiontrain demo --shared $(SHARED)

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/python benchmarks/run.py --data $(SHARED)/datasets/ants_bees

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
