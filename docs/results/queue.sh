#!/bin/bash
# The real runs of issues 14, 15 and 16 in priority order, each call resumable (finished runs are never redone).
# Restart it in each session:  nohup docs/results/queue.sh >> runs/queue.log 2>&1 &
# Issue 15 first (it is closest to done), then 16, then the audit (issue 14, the longest). Everything not yet
# started runs in bf16 (benchmarks/precision_cost_results_cpu.md); ood-nlrx-id is the fp32 pilot, finished.
cd "$(dirname "$0")/../.."   # the repository root
step() { echo "=== $(date -u +%FT%TZ) $*"; .venv/bin/lmjepa "$@" || echo "=== exit $? for: $*"; }
step sweep configs/ood-nlrx-id.yaml                                        # issue 15: ID + OOD, no retraining
step sweep configs/ood-nlrx-depth.yaml                                     # issue 15: trained on a split
step sweep configs/ood-nlrx-combo.yaml
step sweep configs/llm-jepa-pretrain/sweep-scratch-nlrx.yaml               # issue 16
step sweep configs/llm-jepa-pretrain/sweep-paraphrase.yaml
step sweep configs/audit-nlrx-cpu.yaml                                     # issue 14: the dispute's factors first
echo "=== $(date -u +%FT%TZ) all done"
