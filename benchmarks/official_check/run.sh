#!/bin/bash
# The official-trainer check (issue 33): lmjepa's `official` conditions against the official LLM-JEPA code itself.
#   benchmarks/official_check/run.sh OFFICIAL_CHECKOUT [WORK]
# OFFICIAL_CHECKOUT: a checkout of galilai-group/llm-jepa (not vendored here). Builds one throwaway venv per
# transformers version of the official side (4.55.0, the replication's; 5.2.0, pinned by the uv.lock of an open
# pull request of the official repository), runs the official side in each, then lmjepa's side in .venv, and
# writes results.md beside this script. Not a project dependency; not in the test suite.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../.." && pwd)
official=$(cd "$1" && pwd); work=${2:-$(mktemp -d)}
"$repo/.venv/bin/python" "$here/lmjepa_side.py" prepare "$work"
for version in ${VERSIONS:-4.55.0 5.2.0}; do
  venv=$work/venv-$version
  [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q torch==2.13.0 \
    "transformers==$version" datasets accelerate peft scikit-learn matplotlib tqdm; }
  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 "$venv/bin/python" "$here/official_side.py" "$official" "$work"
done
"$repo/.venv/bin/python" "$here/lmjepa_side.py" compare "$work" "$here/results.md"
