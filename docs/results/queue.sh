#!/bin/bash
# The real runs still to do, resumable across sessions and machines: the audit (issue 14).
# Each session:   nohup docs/results/queue.sh >> runs/queue.log 2>&1 &
# Before it ends: .venv/bin/lmjepa audit configs/audit-nlrx-cpu.yaml --report-only --out docs/results/audit-nlrx-cpu
#                 (the report, and results.jsonl: every finished run with its geometry), then commit that folder.
# runs/ does not outlive a machine: --restore brings the committed rows back, so no finished run is retrained.
# (Issues 15 and 16 finished; their stores are committed beside their reports. Running their sweeps again
# on a new machine would retrain everything: restore first, e.g. `lmjepa sweep configs/ood-nlrx-id.yaml
# --restore docs/results/ood-nlrx/results.jsonl`, whose 10 rows carry the spec's config hashes.)
cd "$(dirname "$0")/../.."   # the repository root
step() { echo "=== $(date -u +%FT%TZ) $*"; .venv/bin/lmjepa "$@" || echo "=== exit $? for: $*"; }
restore=docs/results/audit-nlrx-cpu/results.jsonl
step audit configs/audit-nlrx-cpu.yaml $([ -f "$restore" ] && echo --restore "$restore")
echo "=== $(date -u +%FT%TZ) all done"
