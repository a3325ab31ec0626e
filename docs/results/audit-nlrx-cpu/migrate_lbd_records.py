"""One-off migration (issue 35): correct the λ recorded by the audit's objectives-only rows, and record every
row's resolved objective.

Before issue 35 a result row's ``metrics.lbd`` was ``jepa.lbd`` whatever the objective, so the stp, sigreg,
fisher-jepa and decoder-jepa rows (``objectives:`` with no ``llm-jepa`` entry) recorded ``lbd: 1.0``, an
LLM-JEPA term that never trained. Since issue 35 the objective is resolved once (``RunConfig.objective_terms``)
and rows record it under ``metrics.objective``, with ``metrics.lbd`` the ``llm-jepa`` term's weight or null.
This script rewrites those two fields from each row's stored config; the config, its hash, every metric and
the report are unchanged (the report reads neither field). Idempotent.

    python docs/results/audit-nlrx-cpu/migrate_lbd_records.py docs/results/audit-nlrx-cpu/results.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lmjepa.config import from_dict
from lmjepa.io import atomic_write_text
from lmjepa.training.config import RunConfig


def migrate(path: Path) -> int:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    changed = 0
    for row in rows:
        config = from_dict(dict(row["config"]), RunConfig)
        fields = {"lbd": config.llm_jepa_weight(), "objective": config.objective_terms()}
        if any(row["metrics"].get(k, "missing") != v for k, v in fields.items()):
            row["metrics"].update(fields)
            changed += 1
    if changed:
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    return changed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {migrate(Path(name))} rows rewritten")
