"""Coupling: does a shift in hidden geometry go with a shift in the task metric? (the JEPA audit's question:
"under which metrics does hidden geometry become decoder-visible task signal").

For every run of an audit (cells × seeds, the baseline's own runs excluded) the shift of a geometry
metric and of the task metric are taken against the baseline run of the same seed. Per geometry
metric: Spearman's ρ between the two shifts, a two-sided permutation p-value (the task shifts shuffled,
``permutations`` times, seeded; p = (1 + #{|ρ_perm| ≥ |ρ|}) / (1 + permutations)), and the family-wise
correction over the geometry metrics (its size stated).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .paired import correct


def paired_shifts(by_cell: dict[str, dict[int, dict]], baseline: str, key: str) -> dict[tuple[str, int], float]:
    """(cell, seed) → value − baseline value at the same seed, for runs (and baselines) that have ``key``."""
    base = by_cell.get(baseline, {})
    return {(cell, seed): float(m[key]) - float(base[seed][key])
            for cell, runs in by_cell.items() if cell != baseline
            for seed, m in runs.items() if seed in base and m.get(key) is not None and base[seed].get(key) is not None}


def permutation_spearman(x, y, permutations: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """(ρ, two-sided permutation p) of Spearman's rank correlation. NaN for fewer than 3 pairs or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    rng = np.random.default_rng(seed)
    shuffled = np.array([np.corrcoef(rx, rng.permutation(ry))[0, 1] for _ in range(permutations)])
    return rho, float((1 + np.sum(np.abs(shuffled) >= abs(rho) - 1e-12)) / (1 + permutations))


def coupling(by_cell: dict[str, dict[int, dict]], baseline: str, task_metric: str, geometry: list[str],
             correction: str = "holm", alpha: float = 0.05, permutations: int = 10_000) -> dict:
    """Per geometry metric: ρ between its shift and the ``task_metric`` shift over all paired runs, the
    permutation p, and the corrected p over the ``geometry`` family. Returns ``{"family_size", "correction",
    "task_metric", "rows": [{"metric", "n", "rho", "p", "p_corrected", "reject", "pairs"}]}``."""
    task = paired_shifts(by_cell, baseline, task_metric)
    rows = []
    for metric in geometry:
        shift = paired_shifts(by_cell, baseline, metric)
        keys = sorted(set(shift) & set(task))
        rho, p = permutation_spearman([shift[k] for k in keys], [task[k] for k in keys], permutations)
        rows.append({"metric": metric, "n": len(keys), "rho": rho, "p": p,
                     "pairs": [[k[0], k[1], shift[k], task[k]] for k in keys]})
    reject, adjusted = correct([r["p"] for r in rows], correction, alpha) if rows else ([], [])
    for row, r, a in zip(rows, reject, adjusted):
        row.update(p_corrected=a, reject=r)
    return {"family_size": len(rows), "correction": correction, "task_metric": task_metric, "rows": rows}
