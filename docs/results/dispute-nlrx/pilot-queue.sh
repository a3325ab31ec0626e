#!/bin/bash
# The dispute's pilot runs (issue 33), resumable across sessions: finished cells are restored from the
# committed store, never retrained. Each minute a store that gained rows is copied here with every finished
# run's predictions.jsonl and committed (those files only).
#   nohup docs/results/dispute-nlrx/pilot-queue.sh >> runs/pilot-queue.log 2>&1 &
cd "$(dirname "$0")/../../.."   # the repository root
spec=${SPEC:-configs/dispute-nlrx-pilot.yaml}
out=$(.venv/bin/python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['output_dir'])" "$spec")
keep=${KEEP:-docs/results/dispute-nlrx/pilot}
store=$out/results.jsonl
mkdir -p "$keep"
commit_store() {
  local n
  n=$([ -f "$store" ] && wc -l < "$store" || echo 0)
  if [ "$n" -gt "$last" ]; then
    cp "$store" "$keep/results.jsonl.tmp" && mv "$keep/results.jsonl.tmp" "$keep/results.jsonl"
    for f in "$out"/*/seed-*/predictions.jsonl; do
      [ -f "${f%predictions.jsonl}metrics.json" ] || continue
      rel=${f#"$out"/}; mkdir -p "$keep/$(dirname "$rel")"; cp "$f" "$keep/$rel"
    done
    git add -- "$keep" && git commit -q -m "dispute pilot store: $n runs of $(basename "$spec") (checkpoint)" -- "$keep" &&
      echo "=== $(date -u +%FT%TZ) checkpoint: $n rows committed"
    last=$n
  fi
}
last=$([ -f "$keep/results.jsonl" ] && wc -l < "$keep/results.jsonl" || echo 0)
checkpoint() { while sleep 60; do commit_store; done; }
checkpoint & trap 'kill $! 2>/dev/null' EXIT
echo "=== $(date -u +%FT%TZ) start $spec"
.venv/bin/lmjepa sweep "$spec" $([ -f "$keep/results.jsonl" ] && echo --restore "$keep/results.jsonl") || echo "=== exit $?"
kill $! 2>/dev/null; commit_store
echo "=== $(date -u +%FT%TZ) all done"
