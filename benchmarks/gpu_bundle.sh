#!/usr/bin/env bash
# What a bare GPU machine needs for benchmarks/gpu_check.sh with FROM_SCRATCH=1, gathered into .gpu/ (add
# `/.gpu/` to .git/info/exclude): SmolLM2-135M's config, tokenizer and chat template without its weights
# (.gpu/smollm2-arch), the first 400 / 200 rows of NL-RX-SYNTH train / test (.gpu/data/llm-jepa) and 200
# multi-view rows (.gpu/paraphrase-nlrx.jsonl). About 4 MB. Then, on the GPU machine:
#   PYTHON=python3 MODEL=.gpu/smollm2-arch FROM_SCRATCH=1 DATA_DIR=.gpu/data PARAPHRASE=.gpu/paraphrase-nlrx.jsonl \
#     bash benchmarks/gpu_check.sh OUT.md
#   bash benchmarks/gpu_bundle.sh [DATA_DIR]      (DATA_DIR: ../shared/data by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p .gpu/smollm2-arch .gpu/data/llm-jepa
MODEL_DIR="$("$PY" -c "from lmjepa.models.loading import resolve_model_path; print(resolve_model_path('smollm2-135m-instruct'))")"
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  [ -f "$MODEL_DIR/$f" ] && cp "$MODEL_DIR/$f" .gpu/smollm2-arch/
done
head -400 "$DATA/llm-jepa/synth_train.jsonl" > .gpu/data/llm-jepa/synth_train.jsonl
head -200 "$DATA/llm-jepa/synth_test.jsonl" > .gpu/data/llm-jepa/synth_test.jsonl
PARA="${LMJEPA_CACHE_DIR:-$HOME/.cache/lmjepa}/data/paraphrase/nlrx.jsonl"
[ -f "$PARA" ] || "$PY" -c "import sys; from lmjepa.cli.main import main; sys.exit(main(['build-data', 'paraphrase-nlrx']))"
head -200 "$PARA" > .gpu/paraphrase-nlrx.jsonl
du -sh .gpu
