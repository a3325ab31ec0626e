#!/bin/bash
# The dispute's 2 × 2 (issue 33), resumable across sessions: finished runs are restored from the committed store,
# never retrained; a run in flight resumes from its last checkpoint (every 20 steps) while runs/ survives. Each
# minute a store that gained rows is copied to $KEEP with every finished run's predictions.jsonl, the report is
# regenerated from it ($REPORT, which writes $REPORT_FILES; REPORT= skips it), and those files only are committed,
# so each commit's report agrees with its store. Phases run in order, seed-major within each: the four cells ×
# 8 seeds, then the fifth cell.
#   nohup docs/results/dispute-nlrx/queue.sh >> runs/dispute-queue.log 2>&1 &
cd "$(dirname "$0")/../../.."   # the repository root
spec=${SPEC:-configs/dispute-nlrx.yaml}
keep=${KEEP:-docs/results/dispute-nlrx/runs}
phases=${PHASES:-"ntp,llm-jepa,ntp-official,llm-jepa-official ntp-official-eot"}
report=${REPORT-docs/results/dispute-nlrx/report.py}
report_files=${REPORT_FILES:-"docs/results/dispute-nlrx/report.md docs/results/dispute-nlrx/interaction.png docs/results/dispute-nlrx/endings.png
  docs/results/dispute-nlrx/README.md README.md docs/measured.md"}
out=$(.venv/bin/python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['output_dir'])" "$spec")
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
    local files=("$keep")
    if [ -n "$report" ]; then
      if .venv/bin/python "$report"; then files+=($report_files)
      else echo "=== $(date -u +%FT%TZ) WARNING: $report failed; committing the rows without the report"; fi
    fi
    git add -- "${files[@]}" && git commit -q -m "dispute store: $n runs of $(basename "$spec") (checkpoint)" -- "${files[@]}" &&
      echo "=== $(date -u +%FT%TZ) checkpoint: $n rows committed" && last=$n   # else retried next minute
  fi
}
last=$([ -f "$keep/results.jsonl" ] && wc -l < "$keep/results.jsonl" || echo 0)
checkpoint() { while sleep 60; do commit_store; done; }
checkpoint & trap 'kill $! 2>/dev/null' EXIT
for cells in $phases; do
  echo "=== $(date -u +%FT%TZ) start $spec cells $cells"
  .venv/bin/lmjepa sweep "$spec" --cells "$cells" $([ -f "$keep/results.jsonl" ] && echo --restore "$keep/results.jsonl") \
    || { echo "=== exit $?"; break; }
done
kill $! 2>/dev/null; commit_store
echo "=== $(date -u +%FT%TZ) all done"
