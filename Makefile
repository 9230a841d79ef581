# The README's two commands:
#   make run    set up, then run the main job on the embedded default store
#   make test   set up, then run the whole test suite (what CI runs)
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup run test lint browser bench clean triton36 oidc

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all]'
	touch $(STAMP)

setup: $(STAMP)

# The GPU machine's Triton (3.6), beside the newest, for tests/trainers/cce/test_gpu_codegen.py
# (sm_90a compiles of every kernel under both); only on PYTHONPATH in those subprocesses.
TRITON36 := $(VENV)/triton-3.6/.installed
$(TRITON36): $(STAMP)
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/triton-3.6 triton==3.6.0
	touch $(TRITON36)

triton36: $(TRITON36)

run: setup
	$(BIN)/scalinglab demo

# Debian's Chromium for the real-browser tests (Playwright drives /usr/bin/chromium).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped"; }

# The sign-in test's OpenID provider (npm's oidc-provider, pinned by its package-lock.json);
# without node the sign-in e2e test is skipped.
OIDC := tests/e2e/oidc
$(OIDC)/node_modules/.installed: $(OIDC)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "warning: no npm; the sign-in e2e test will be skipped"; exit 0; }; \
	  npm ci --prefix $(OIDC) --no-audit --no-fund --loglevel=error && touch $@

oidc: $(OIDC)/node_modules/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup browser triton36 oidc
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q --timeout=900

# CPU benchmarks (each writes bench/results/*.md); the CCE and GPU trainer benches need a GPU:
#   python bench/cce_bench.py ; python bench/trainer_bench.py --gpu
bench: setup browser
	$(BIN)/python bench/store_bench.py --out bench/results/store.md
	$(BIN)/python bench/fitting_bench.py
	$(BIN)/python bench/fitting_curves_bench.py
	$(BIN)/python bench/trainer_bench.py --cpu-tiny --science
	$(BIN)/python bench/dashboard_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
