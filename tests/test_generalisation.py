"""ID vs OOD: the gap table against hand arithmetic and scipy; missing evaluations are named."""

import json

import numpy as np
import pytest
from scipy import stats

from lmjepa.cli.main import main
from lmjepa.data.jsonl import DataError
from lmjepa.stats.generalisation import gap_table

# (cell, seed): (ID exact, OOD exact)
VALUES = {("ntp", 1): (50.0, 30.0), ("ntp", 2): (52.0, 35.0), ("ntp", 3): (48.0, 30.0),
          ("jepa", 1): (51.0, 36.0), ("jepa", 2): (53.0, 40.0), ("jepa", 3): (49.0, 33.0)}


def _rows(tmp_path):
    rows = []
    for (cell, seed), (ind, ood) in VALUES.items():
        row = {"cell": cell, "seed": seed, "metrics": {"exact_match": ind}}
        if cell == "ntp":
            row["metrics_by_task"] = {"ood": {"exact_match": ood}}
        else:  # read from the run folder instead
            folder = tmp_path / f"{cell}-{seed}"
            (folder / "eval" / "ood").mkdir(parents=True)
            (folder / "eval" / "ood" / "metrics.json").write_text(json.dumps({"exact_match": ood}))
            row["config"] = {"output_dir": str(folder)}
        rows.append(row)
    return rows


def test_gaps_and_delta_gap_by_hand(tmp_path):
    result = gap_table(_rows(tmp_path), "ntp", ["exact_match"], ["ood"])
    ntp, jepa = result["gaps"]
    assert ntp["cell"] == "ntp" and ntp["gap_mean"] == pytest.approx((20 + 17 + 18) / 3)
    assert jepa["gap_mean"] == pytest.approx((15 + 13 + 16) / 3)
    ind, ood = np.array([51.0, 53, 49]), np.array([36.0, 40, 33])
    assert jepa["p_gap"] == pytest.approx(stats.ttest_rel(ind, ood).pvalue)
    (delta,) = result["deltas"]
    assert delta["delta"] == pytest.approx(np.mean([15 - 20, 13 - 17, 16 - 18]))  # the cell narrows the gap
    assert delta["p_t_two_sided"] == pytest.approx(stats.ttest_rel([15, 13, 16], [20, 17, 18]).pvalue)
    (better,) = result["ood_deltas"]  # the OOD scores themselves, cell vs baseline, one-sided
    assert better["delta"] == pytest.approx(np.mean([36 - 30, 40 - 35, 33 - 30]))
    assert better["p_t_one_sided"] == pytest.approx(
        stats.ttest_rel([36.0, 40, 33], [30.0, 35, 30], alternative="greater").pvalue)
    assert better["p_t_one_sided_corrected"] == pytest.approx(better["p_t_one_sided"])  # a family of one
    assert result["family_sizes"] == {"gap": 2, "delta_gap": 1, "delta_ood": 1}
    # Holm over the two gap tests: the smaller p doubled, the larger max(itself, that)
    ps = sorted([ntp["p_gap"], jepa["p_gap"]])
    assert min(ntp["p_gap_corrected"], jepa["p_gap_corrected"]) == pytest.approx(min(1, 2 * ps[0]))


def test_missing_task_metrics_are_named(tmp_path):
    rows = _rows(tmp_path)
    del rows[0]["metrics_by_task"]
    with pytest.raises(DataError, match="cell 'ntp' seed 1: no metrics on task 'ood'"):
        gap_table(rows, "ntp", ["exact_match"], ["ood"])


def test_compare_cli_adds_the_generalisation_section(tmp_path):
    store = tmp_path / "results.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in _rows(tmp_path)))
    assert main(["compare", str(store), "--baseline", "ntp", "--task", "ood", "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Generalisation" in report and "| jepa | ood | exact_match | 3 |" in report
    assert "| jepa | ood | exact_match | 3 | 31.67 | 36.33 | +4.67 [" in report  # the ΔOOD row
    assert json.loads((tmp_path / "cmp" / "stats.json").read_text())["generalisation"]["deltas"][0]["cell"] == "jepa"


def test_cells_never_evaluated_out_of_distribution_are_left_out_and_named(tmp_path):
    rows = _rows(tmp_path) + [{"cell": "stp", "seed": s, "metrics": {"exact_match": 50.0}} for s in (1, 2, 3)]
    result = gap_table(rows, "ntp", ["exact_match"], ["ood"])
    assert result["not_evaluated"] == ["stp"] and {g["cell"] for g in result["gaps"]} == {"ntp", "jepa"}
    rows[-1]["metrics_by_task"] = {"ood": {"exact_match": 1.0}}  # partly evaluated: an error, not a silent skip
    with pytest.raises(DataError, match="cell 'stp' seed 1: no metrics on task 'ood'"):
        gap_table(rows, "ntp", ["exact_match"], ["ood"])
