"""The generalisation report of ``lmjepa compare --task T``: in-distribution vs out-of-distribution (issue 15).

Each run of a results store was trained once and evaluated on its own task (in distribution, ``metrics``)
and on other tasks (``metrics_by_task`` of its row, written by a sweep's ``evaluate_on``, or
``<output_dir>/eval/<task>/metrics.json``). For a metric m and an OOD task T, a run's generalisation gap is

    gap = m(ID) − m(T)          (percentage points; positive: the run does worse out of distribution)

Per cell: ID and OOD means ± sd over seeds, the mean gap with the paired t-test of ID against OOD across
seeds (H0: no gap; scipy ``ttest_rel``, two-sided). Per cell against the baseline: Δgap (cell − baseline,
paired by seed; negative: the cell narrows the gap) with its 95% CI (t-interval at n ≤ 10) and two-sided paired
t-test; and ΔOOD, the cell's OOD score against the baseline's on the same task (paired by seed, t-interval
CI, one-sided paired t-test, H1: the cell does better out of distribution — the question "does it help
there?" asked directly, as ``lmjepa compare`` asks it in distribution). The three families (cells × tasks ×
metrics each) are corrected separately (Holm by default) and their sizes stated.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from ..data.jsonl import DataError
from .paired import correct, format_p, paired_comparison


def task_metrics(row: dict, task: str) -> dict | None:
    """The row's metrics on ``task``: its ``metrics_by_task`` entry, else the run folder's
    ``eval/<task>/metrics.json``; None if neither exists."""
    if task in (row.get("metrics_by_task") or {}):
        return row["metrics_by_task"][task]
    folder = (row.get("config") or {}).get("output_dir")
    path = Path(folder) / "eval" / task / "metrics.json" if folder else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def gap_table(rows: list[dict], baseline: str, metrics: list[str], tasks: list[str],
              correction: str = "holm", alpha: float = 0.05) -> dict:
    """ID vs OOD statistics of every cell evaluated on ``tasks`` (module docstring); cells none of whose runs
    were evaluated there are listed in ``not_evaluated``. Raises DataError naming the cell, seed and task of
    a run without that task's metrics in a cell whose other runs have them, or a cell with fewer than 2 runs."""
    found = [{task: task_metrics(row, task) for task in tasks} for row in rows]  # each file read once
    evaluated = {row["cell"] for row, by_task in zip(rows, found) if None not in by_task.values()}
    skipped = sorted({r["cell"] for r in rows} - evaluated - {baseline})
    by_cell: dict[str, dict[int, dict]] = defaultdict(dict)
    for row, by_task in zip(rows, found):
        if row["cell"] not in evaluated and row["cell"] != baseline:  # cells never evaluated OOD wait
            continue
        seed = int(row["seed"])
        for task, values in by_task.items():
            if values is None:
                raise DataError(f"cell {row['cell']!r} seed {seed}: no metrics on task {task!r} (evaluate it: "
                                f"lmjepa evaluate RUN --task {task} --out RUN/eval/{task}, or evaluate_on in the sweep)")
        by_cell[row["cell"]][seed] = {"id": row["metrics"], **by_task}
    cells, deltas, ood_deltas = [], [], []
    for cell in sorted(by_cell, key=lambda c: (c != baseline, c)):
        runs = by_cell[cell]
        if len(runs) < 2:
            raise DataError(f"cell {cell!r} has {len(runs)} run(s); a paired test needs at least 2")
        seeds = sorted(runs)
        for task in tasks:
            for metric in metrics:
                ind = np.array([runs[s]["id"][metric] for s in seeds], dtype=float)
                ood = np.array([runs[s][task][metric] for s in seeds], dtype=float)
                gap = ind - ood
                p = float(stats.ttest_rel(ind, ood).pvalue) if np.std(gap) > 0 else (1.0 if gap.mean() == 0 else 0.0)
                cells.append({"cell": cell, "task": task, "metric": metric, "n": len(seeds),
                              "id_mean": float(ind.mean()), "id_sd": float(ind.std(ddof=1)),
                              "ood_mean": float(ood.mean()), "ood_sd": float(ood.std(ddof=1)),
                              "gap_mean": float(gap.mean()), "gap_sd": float(gap.std(ddof=1)), "p_gap": p})
                if cell != baseline and baseline in by_cell:
                    shared = sorted(set(seeds) & set(by_cell[baseline]))
                    if len(shared) < 2:
                        raise DataError(f"cell {cell!r} shares {len(shared)} seed(s) with {baseline!r}")
                    base_gap = [by_cell[baseline][s]["id"][metric] - by_cell[baseline][s][task][metric] for s in shared]
                    cell_gap = [runs[s]["id"][metric] - runs[s][task][metric] for s in shared]
                    result = paired_comparison(base_gap, cell_gap, alpha=alpha).to_dict()
                    deltas.append({"cell": cell, "task": task, "metric": metric, "seeds": shared, **result})
                    result = paired_comparison([by_cell[baseline][s][task][metric] for s in shared],
                                               [runs[s][task][metric] for s in shared], alpha=alpha).to_dict()
                    ood_deltas.append({"cell": cell, "task": task, "metric": metric, "seeds": shared, **result})
    for family, key in ((cells, "p_gap"), (deltas, "p_t_two_sided"), (ood_deltas, "p_t_one_sided")):
        reject, adjusted = correct([t[key] for t in family], correction, alpha) if family else ([], [])
        for test, r, p in zip(family, reject, adjusted):
            test[f"{key}_corrected"], test["reject"] = p, r
    return {"baseline": baseline, "tasks": tasks, "metrics": metrics, "correction": correction, "alpha": alpha,
            "gaps": cells, "deltas": deltas, "ood_deltas": ood_deltas,
            "family_sizes": {"gap": len(cells), "delta_gap": len(deltas), "delta_ood": len(ood_deltas)},
            "not_evaluated": skipped}


def render_gaps(result: dict) -> str:
    """Markdown: the ID/OOD/gap table per cell, then ΔOOD and Δgap against the baseline."""
    c, a = result["correction"], result["alpha"]
    lines = ["", "## Generalisation: in distribution vs out of distribution", "",
             f"gap = ID − OOD in points (positive: worse out of distribution), mean ± sd over seeds; p: paired "
             f"t-test of ID against OOD across seeds (two-sided), {c}-corrected over {result['family_sizes']['gap']} "
             f"tests (cells × tasks × metrics) at α = {a}.", "",
             "| cell | OOD task | metric | n | ID | OOD | gap | p | corrected |", "|---|---|---|---|---|---|---|---|---|"]
    for g in result["gaps"]:
        lines.append(f"| {g['cell']} | {g['task']} | {g['metric']} | {g['n']} | {g['id_mean']:.2f} ± {g['id_sd']:.2f} | "
                     f"{g['ood_mean']:.2f} ± {g['ood_sd']:.2f} | {g['gap_mean']:+.2f} ± {g['gap_sd']:.2f} | "
                     f"{format_p(g['p_gap'])} | {format_p(g['p_gap_corrected'])} |")
    if result.get("not_evaluated"):
        lines += ["", f"Not evaluated out of distribution (left out): {', '.join(result['not_evaluated'])}."]
    if result.get("ood_deltas"):
        lines += ["", f"ΔOOD = OOD score of the cell − that of `{result['baseline']}` on the same task, paired by seed; "
                  f"one-sided paired t-test (H1: the cell does better out of distribution), {c}-corrected over "
                  f"{result['family_sizes']['delta_ood']} tests.", "",
                  "| cell | OOD task | metric | n | baseline OOD | cell OOD | ΔOOD [95% CI] | p (1-sided) "
                  "| corrected | decision |", "|---|---|---|---|---|---|---|---|---|---|"]
        for d in result["ood_deltas"]:
            decision = "**better OOD**" if d["reject"] else "no evidence"
            lines.append(f"| {d['cell']} | {d['task']} | {d['metric']} | {d['n']} | {d['baseline_mean']:.2f} | "
                         f"{d['cell_mean']:.2f} | {d['delta']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] | "
                         f"{format_p(d['p_t_one_sided'])} | {format_p(d['p_t_one_sided_corrected'])} | {decision} |")
    if result["deltas"]:
        lines += ["", f"Δgap = gap(cell) − gap(`{result['baseline']}`), paired by seed (negative: the cell narrows "
                  f"the gap); two-sided paired t-test, {c}-corrected over {result['family_sizes']['delta_gap']} tests.",
                  "", "| cell | OOD task | metric | n | Δgap [95% CI] | p | corrected | decision |",
                  "|---|---|---|---|---|---|---|---|"]
        for d in result["deltas"]:
            decision = ("**narrows**" if d["delta"] < 0 else "**widens**") if d["reject"] else "no evidence"
            lines.append(f"| {d['cell']} | {d['task']} | {d['metric']} | {d['n']} | {d['delta']:+.2f} "
                         f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] | {format_p(d['p_t_two_sided'])} | "
                         f"{format_p(d['p_t_two_sided_corrected'])} | {decision} |")
    return "\n".join(lines) + "\n"
