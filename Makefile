# Set-up, the main job, and the tests. `make demo` and `make test` are the
# README's two commands; CI runs `make test` (see .ci/run).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HWNAS := $(VENV)/bin/hwnas
STAMP := $(VENV)/.hwnas-installed

.PHONY: setup demo test test-fast edge-board browser lint bench clean

setup: $(STAMP)

# torch first, from the local CPU build: any later requirement then finds it
# satisfied instead of pulling GBs of CUDA wheels.
$(STAMP): pyproject.toml examples/hwnas-example-plugin/pyproject.toml examples/hwnas-openvino/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ray,pretrained]' -e examples/hwnas-example-plugin
	$(PY) -m pip install -q -e examples/hwnas-openvino  # a real third-party target (pulls openvino)
	touch $@

# The main job on the embedded default: search (resumable: a second `make demo`
# reuses what the first measured), export the best subnet under the latency
# bound, verify the artifact. Override e.g. `make demo DEMO_BUDGET=60`.
DEMO_TARGET ?= onnxruntime:cpu?threads=1
DEMO_BOUND ?= latency<=0.3ms
DEMO_BUDGET ?= 30
DEMO_RUN ?= runs/demo
DEMO_ARTIFACT ?= artifacts/demo

demo: setup
	$(HWNAS) targets
	$(HWNAS) search --target '$(DEMO_TARGET)' --objectives accuracy,latency --strategy linas \
		--budget $(DEMO_BUDGET) --constraint '$(DEMO_BOUND)' --out $(DEMO_RUN) \
		$(if $(wildcard $(DEMO_RUN)/search.sqlite),--resume,)
	$(HWNAS) export $(DEMO_RUN) --pick 'max accuracy where $(DEMO_BOUND)' --target '$(DEMO_TARGET)' \
		--out $(DEMO_ARTIFACT) --overwrite
	$(HWNAS) verify $(DEMO_ARTIFACT)
	@echo "artifact: $(DEMO_ARTIFACT) (run it anywhere with: python $(DEMO_ARTIFACT)/run.py)"
	@echo "report: $(DEMO_RUN)/report.html (open it in a browser; compare runs with: $(HWNAS) report RUN1 RUN2 --out FILE)"

# The emulated aarch64 board's root (built once, cached under ~/.cache/hwnas).
# Building it needs root (debootstrap, chroot); without root the edge tests skip.
edge-board: setup
	@if [ "$$(id -u)" = 0 ]; then $(PY) tools/edge_board.py build; \
	else echo "edge-board: not root, so the emulated board is not built and edge tests will skip"; fi

# Debian's Chromium for the report page's browser test (needs root and apt; elsewhere it skips).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "browser: installing chromium failed, so the report browser test will skip"; \
	else echo "browser: no chromium and cannot install it (not root, or no apt), so the report browser test will skip"; fi

test: setup edge-board browser
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not edge"

lint: setup
	$(VENV)/bin/ruff check hwnas targets plugins tests tools examples

clean:
	rm -rf $(VENV) .pytest_cache runs artifacts
