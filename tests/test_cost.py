"""The compare report's Cost section: per cell, the median seconds of each recorded measure and the ratio to
the baseline, checked against numpy on hand-made rows."""

from __future__ import annotations

import json

import numpy as np

from lmjepa.analysis.cost import cost_by_cell, render_cost
from lmjepa.cli.main import main


def _row(cell, seed, wall=None, train=None, cpu=None, stage=None):
    metrics = {"exact_match": 50.0 + seed}
    metrics.update({k: v for k, v in (("train_seconds", train), ("train_cpu_seconds", cpu)) if v is not None})
    row = {"cell": cell, "seed": seed, "metrics": metrics}
    row.update({k: v for k, v in (("wall_seconds", wall), ("stage", stage)) if v is not None})
    return row


ROWS = [_row("ntp", 1, 100.0, 80.0, 150.0), _row("ntp", 2, 130.0, 90.0, 170.0), _row("ntp", 3, 120.0, 95.0),
        _row("llm-jepa", 1, 260.0, 200.0, 390.0), _row("llm-jepa", 2, 7000.0, 6000.0, 400.0),
        _row("llm-jepa", 3, 250.0, 190.0, 380.0)]


def test_medians_and_ratios_to_the_baseline():
    cells = cost_by_cell(ROWS)
    assert list(cells) == ["ntp", "llm-jepa"] and cells["ntp"]["runs"] == 3
    assert cells["ntp"]["train_cpu_seconds"] == [150.0, 170.0]  # seed 3 records no CPU seconds
    lines = render_cost(ROWS, "ntp")
    assert lines[1] == "## Cost" and lines[-4] == "| cell | runs | training, wall | training, CPU | whole run, wall |"
    ntp, jepa = lines[-2], lines[-1]
    med = {cell: {key: float(np.median([r["metrics"].get(key, r.get(key)) for r in ROWS if r["cell"] == cell
                                        and r["metrics"].get(key, r.get(key)) is not None]))
                  for key in ("train_seconds", "train_cpu_seconds", "wall_seconds")} for cell in ("ntp", "llm-jepa")}
    assert med["llm-jepa"]["wall_seconds"] == 260.0  # the median: one paused run does not move it
    ratio = {k: med["llm-jepa"][k] / med["ntp"][k] for k in med["ntp"]}
    assert ntp == "| `ntp` | 3 | 1.5 min | 2.7 min, 2 of 3 runs | 2.0 min |"
    assert jepa == (f"| `llm-jepa` | 3 | 3.3 min (×{ratio['train_seconds']:.2f}) | 6.5 min "
                    f"(×{ratio['train_cpu_seconds']:.2f}) | 4.3 min (×{ratio['wall_seconds']:.2f}) |")


def test_a_measure_no_row_records_has_no_column_and_no_record_means_no_section():
    old = [{k: v for k, v in r.items()} | {"metrics": {"exact_match": 1.0, "train_seconds": 10.0 * r["seed"]}}
           for r in ROWS]
    lines = render_cost(old, "ntp")
    assert lines[-4] == "| cell | runs | training, wall | whole run, wall |"
    assert render_cost([{"cell": "ntp", "seed": 1, "metrics": {"exact_match": 1.0}}], "ntp") == []
    titled = render_cost(ROWS, "ntp", "What it cost", "Two runs were paused.")
    assert titled[1] == "## What it cost" and titled[3].endswith("made the runs. Two runs were paused.")


def test_a_two_stage_store_is_costed_per_stage_against_the_same_stage():
    rows = [_row("ntp", 1, 1000.0, stage="pretrain"), _row("llm-jepa", 1, 3000.0, stage="pretrain"),
            _row("ntp", 11, 100.0, stage="finetune"), _row("llm-jepa", 11, 150.0, stage="finetune")]
    lines = render_cost(rows, "ntp")
    assert "| `llm-jepa (pretrain)` | 1 | 50.0 min (×3.00) |" in lines
    assert "| `llm-jepa (finetune)` | 1 | 2.5 min (×1.50) |" in lines
    assert "| `ntp (finetune)` | 1 | 1.7 min |" in lines and "| `ntp (pretrain)` | 1 | 16.7 min |" in lines


def test_lmjepa_compare_writes_the_cost_section(tmp_path, capsys):
    store = tmp_path / "results.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["compare", str(store), "--baseline", "ntp", "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert report.index("![Δ per cell](deltas.png)") < report.index("## Cost")
    assert "\n".join(render_cost(ROWS, "ntp")) in report
