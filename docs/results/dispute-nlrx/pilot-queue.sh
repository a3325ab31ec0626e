#!/bin/bash
# The dispute's pilot runs (issue 33), resumable across sessions: queue.sh on the pilot's spec, all its cells in
# one phase, the rows and predictions kept in pilot/, and pilot.md regenerated (pilot_table.py) and committed
# with each new row (see queue.sh).
#   nohup docs/results/dispute-nlrx/pilot-queue.sh >> runs/pilot-queue.log 2>&1 &
cd "$(dirname "$0")/../../.."   # the repository root
spec=configs/dispute-nlrx-pilot.yaml
cells=$(.venv/bin/python -c "import yaml,sys; print(','.join(yaml.safe_load(open(sys.argv[1]))['cells']))" "$spec")
SPEC=$spec KEEP=docs/results/dispute-nlrx/pilot PHASES=$cells REPORT=docs/results/dispute-nlrx/pilot_table.py \
  REPORT_FILES=docs/results/dispute-nlrx/pilot.md exec docs/results/dispute-nlrx/queue.sh
