#!/bin/bash
# The real runs of issues 14, 15 and 16 in priority order, each call resumable (finished runs are never redone).
# Restart it in each session:  nohup docs/results/queue.sh >> runs/queue.log 2>&1 &
cd "$(dirname "$0")/../.."   # the repository root
while pgrep -f "lmjepa sweep configs/audit-nlrx-cpu.yaml --cells ntp,llm-jepa-chat" > /dev/null; do sleep 30; done
step() { echo "=== $(date -u +%FT%TZ) $*"; .venv/bin/lmjepa "$@" || echo "=== exit $? for: $*"; }
step sweep configs/audit-nlrx-cpu.yaml --cells ntp,llm-jepa-chat --evaluate-on nlrx-dedup,nlrx-paraphrase  # ID + OOD
step sweep configs/ood-nlrx-depth.yaml                                     # issue 15: trained on a split
step sweep configs/ood-nlrx-combo.yaml
step sweep configs/audit-nlrx-cpu.yaml --cells llm-jepa-content,ntp-official,llm-jepa-official,ntp-small,llm-jepa-small
step sweep configs/llm-jepa-pretrain/sweep-scratch-nlrx.yaml               # issue 16
step sweep configs/llm-jepa-pretrain/sweep-paraphrase.yaml
step sweep configs/audit-nlrx-cpu.yaml                                     # the audit families
echo "=== $(date -u +%FT%TZ) all done"
