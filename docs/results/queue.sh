#!/bin/bash
# The real runs of the audit (issue 14), resumable across sessions and machines. All 60 finished on 2026-12-02;
# run again, it restores them and trains nothing.
# Each session:   nohup docs/results/queue.sh >> runs/queue.log 2>&1 &
# Before it ends: .venv/bin/lmjepa audit configs/audit-nlrx-cpu.yaml --report-only --out docs/results/audit-nlrx-cpu
#                 (the report, and results.jsonl: every finished run with its geometry), then commit that folder.
# runs/ does not outlive a machine: --restore brings the committed rows back, so no finished run is retrained.
# A session can also end without warning (one did, and took six finished runs with it): so every minute a store
# that has gained rows is copied to docs/ and that one file is committed; at most the run in flight is lost.
# (Issues 15 and 16 finished; their stores are committed beside their reports. Running their sweeps again
# on a new machine would retrain everything: restore first, e.g. `lmjepa sweep configs/ood-nlrx-id.yaml
# --restore docs/results/ood-nlrx/results.jsonl`, whose 10 rows carry the spec's config hashes.)
cd "$(dirname "$0")/../.."   # the repository root
step() { echo "=== $(date -u +%FT%TZ) $*"; .venv/bin/lmjepa "$@" || echo "=== exit $? for: $*"; }
store=runs/audit-nlrx-cpu/results.jsonl
restore=docs/results/audit-nlrx-cpu/results.jsonl
commit_store() {   # copy the store's rows to docs/ and commit that one file, if it has gained any
  local n
  n=$([ -f "$store" ] && wc -l < "$store" || echo 0)
  if [ "$n" -gt "$last" ]; then
    cp "$store" "$restore.tmp" && mv "$restore.tmp" "$restore" &&
      git commit -q -m "audit store: $n of 60 runs (checkpoint; the report follows)" -- "$restore" &&
      echo "=== $(date -u +%FT%TZ) checkpoint: $n rows committed"
    last=$n
  fi
}
last=$([ -f "$restore" ] && wc -l < "$restore" || echo 0)
checkpoint() { while sleep 60; do commit_store; done; }
checkpoint & trap 'kill $! 2>/dev/null' EXIT
step audit configs/audit-nlrx-cpu.yaml $([ -f "$restore" ] && echo --restore "$restore")
kill $! 2>/dev/null; last=$(wc -l < "$restore"); commit_store   # the last row, which the loop may not have seen
echo "=== $(date -u +%FT%TZ) all done"
