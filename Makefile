# Set-up, the main job, and the tests. `make demo` and `make test` are the
# README's two commands; CI runs `make test` (see .ci/run).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HWNAS := $(VENV)/bin/hwnas
STAMP := $(VENV)/.hwnas-installed

.PHONY: setup demo test test-fast edge-board lint bench clean

setup: $(STAMP)

# torch first, from the local CPU build: any later requirement then finds it
# satisfied instead of pulling GBs of CUDA wheels.
$(STAMP): pyproject.toml examples/hwnas-example-plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]' -e examples/hwnas-example-plugin
	touch $@

demo: setup
	$(HWNAS) plugins
	$(HWNAS) targets

# The emulated aarch64 board's root (built once, cached under ~/.cache/hwnas).
edge-board: setup
	$(PY) tools/edge_board.py build

test: setup edge-board
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not edge"

lint: setup
	$(VENV)/bin/ruff check hwnas targets plugins tests tools

clean:
	rm -rf $(VENV) .pytest_cache
