#!/usr/bin/env bash
# The GPU checks, in one go, for a lent GPU machine: CPU vs CUDA training parity of every view mode and
# audit family (benchmarks/cuda_parity.py; exit status 1 if a loss disagrees), the step cost of the view
# modes and of the auxiliary terms in bf16 (torch.cuda.max_memory_allocated), and, with real weights,
# generation throughput (fp32 and bf16). Writes one Markdown file (default benchmarks/gpu_results.md).
#   bash benchmarks/gpu_check.sh [OUT.md]
# Environment (defaults in brackets):
#   PYTHON [.venv/bin/python]  DATA_DIR [../shared/data]  MODEL [smollm2-135m-instruct]
#   FROM_SCRATCH=1  the architecture of MODEL with random weights (a folder with config.json and the
#                   tokenizer is enough): step costs are then still valid, generation throughput is skipped
#   PARAPHRASE      a {"views": [...]} JSONL for the multi-view parity run [$LMJEPA_CACHE_DIR/data/paraphrase/nlrx.jsonl,
#                   written by `lmjepa build-data paraphrase-nlrx`]
# Without the weights or the data on the GPU machine: `bash benchmarks/gpu_bundle.sh` gathers them into .gpu/.
# The results of 2026-11-30 on an H200: benchmarks/gpu_results_h200.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/gpu_results.md}"
PY="${PYTHON:-.venv/bin/python}"
DATA="${DATA_DIR:-../shared/data}"
MODEL="${MODEL:-smollm2-135m-instruct}"
PARAPHRASE="${PARAPHRASE:-${LMJEPA_CACHE_DIR:-$HOME/.cache/lmjepa}/data/paraphrase/nlrx.jsonl}"
SCRATCH=(); [ "${FROM_SCRATCH:-0}" = 1 ] && SCRATCH=(--from-scratch)
TMP="$(mktemp -d)"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU visible'; print(torch.cuda.get_device_name())" \
  > "$TMP/device" || exit 1
status=0
"$PY" benchmarks/cuda_parity.py --model "$MODEL" --data-dir "$DATA" --paraphrase "$PARAPHRASE" --out "$TMP/parity.md" \
  || status=1
"$PY" benchmarks/step_cost.py --model "$MODEL" "${SCRATCH[@]}" --data-dir "$DATA" --rounds 5 --steps 8 --bf16 \
  --out "$TMP/views.md" || status=1
"$PY" benchmarks/step_cost.py --aux --model "$MODEL" "${SCRATCH[@]}" --data-dir "$DATA" --rounds 5 --steps 8 --bf16 \
  --out "$TMP/aux.md" || status=1
if [ "${FROM_SCRATCH:-0}" != 1 ]; then
  "$PY" benchmarks/eval_throughput.py --rows 256 --batch-size 64 --out "$TMP/generation_fp32.md" || status=1
  "$PY" benchmarks/eval_throughput.py --rows 256 --batch-size 64 --bf16 --out "$TMP/generation_bf16.md" || status=1
fi
{
  echo "# GPU measurements: $(cat "$TMP/device"), $(date -u +%Y-%m-%d), model $MODEL${SCRATCH:+ (random weights)}"
  for part in parity:"CPU vs CUDA parity" views:"Step cost, view modes" aux:"Step cost, auxiliary terms" \
              generation_fp32:"Generation, fp32" generation_bf16:"Generation, bf16"; do
    [ -f "$TMP/${part%%:*}.md" ] && { echo; echo "## ${part#*:}"; echo; cat "$TMP/${part%%:*}.md"; }
  done
} > "$OUT"
echo "written: $OUT (status $status)"
exit $status
