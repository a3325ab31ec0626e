#!/usr/bin/env bash
# The GPU measurements, in one go, for a lent GPU machine: step cost of every view mode and of the auxiliary
# terms (torch.cuda.max_memory_allocated), and generation throughput (fp32 and bf16). Writes one Markdown
# file (default benchmarks/gpu_results.md) to paste into the README.
#   bash benchmarks/gpu_check.sh [OUT.md]      (expects the .venv of `make setup` and ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/gpu_results.md}"
PY="${PYTHON:-.venv/bin/python}"
TMP="$(mktemp -d)"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU visible'; print(torch.cuda.get_device_name())" | tee "$TMP/device"
"$PY" benchmarks/step_cost.py --rounds 3 --steps 4 --bf16 --out "$TMP/views.md"
"$PY" benchmarks/step_cost.py --aux --rounds 3 --steps 4 --bf16 --out "$TMP/aux.md"
"$PY" benchmarks/eval_throughput.py --rows 256 --batch-size 64 --out "$TMP/generation_fp32.md"
"$PY" benchmarks/eval_throughput.py --rows 256 --batch-size 64 --bf16 --out "$TMP/generation_bf16.md"
{
  echo "# GPU measurements: $(cat "$TMP/device"), $(date -u +%Y-%m-%d)"
  echo; echo "## Step cost, view modes"; echo; cat "$TMP/views.md"
  echo; echo "## Step cost, auxiliary terms"; echo; cat "$TMP/aux.md"
  echo; echo "## Generation, fp32"; echo; cat "$TMP/generation_fp32.md"
  echo; echo "## Generation, bf16"; echo; cat "$TMP/generation_bf16.md"
} > "$OUT"
echo "written: $OUT"
