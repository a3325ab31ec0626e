"""One-off migration (issue 33): relabel the audit rows that ran with ``jepa.accumulation_scaling: official``
where it could not act.

Every run of this audit used gradient_accumulation_steps = 1. There the official scaling divides nothing that
lmjepa's would divide (both scale the terms by 1, and the NTP token mean of one micro-batch is the micro-batch
mean), so the ``ntp-official`` and ``llm-jepa-official`` runs trained exactly as with ``lmjepa`` scaling. Since
issue 33 the inert setting is refused at load, and the preset's cells no longer carry it; this script sets the
rows' config to match, recomputes each row's ``config_hash`` from its config, and leaves metrics, predictions
and every other key as they were. Idempotent.

    python docs/results/audit-nlrx-cpu/migrate_inert_scaling.py docs/results/audit-nlrx-cpu/results.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lmjepa.config import from_dict
from lmjepa.training.config import RunConfig
from lmjepa.io import atomic_write_text
from lmjepa.pipeline.sweep import config_hash


def migrate(path: Path) -> int:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    changed = 0
    for row in rows:
        config = row["config"]
        if config["jepa"].get("accumulation_scaling") != "official":
            continue
        if config["train"]["gradient_accumulation_steps"] > 1:
            raise SystemExit(f"{path}: {row['cell']} seed {row['seed']} ran at GA > 1; the scaling acted there")
        config["jepa"]["accumulation_scaling"] = "lmjepa"
        row["config_hash"] = config_hash(from_dict({k: v for k, v in config.items()}, RunConfig))
        changed += 1
    if changed:
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    return changed


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.jsonl"))
    print(f"{target}: {migrate(target)} rows relabelled")
