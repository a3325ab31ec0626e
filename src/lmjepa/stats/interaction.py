"""A seed-paired 2 × 2: does an objective's effect depend on the training conditions? (issue 33)

Four cells — objective {base, treated} × conditions {A, B} — run with the same seeds. Per seed s,

    I_s = (treated_B,s − base_B,s) − (treated_A,s − base_A,s)

is the interaction (percentage points for a metric in percent). Reported: mean I, its 95 % **t-interval**
(df = n − 1; at n ≤ 10 seeds a percentile bootstrap is too narrow) and the two-sided one-sample t-test
(scipy). Each simple effect (treated − base within A, within B) gets the same, and is split into a content
and a termination part per seed (``split_effect``), each part with its own t-interval.

The row-level model (``row_level_model``) fits ``y ~ treated * B`` over rows × seeds by GEE (statsmodels,
binomial, exchangeable correlation, clusters = test rows) and reports the interaction's odds ratio; where a
cell has too few successes for the logistic fit (quasi-separation), it says so and fits the linear
probability model with cluster-robust standard errors instead.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .paired import format_p
from .termination import split_delta


def t_interval(values, level: float = 0.95) -> dict:
    """Mean of ``values`` (one per seed) with its t-interval and two-sided one-sample t-test against 0.

    Returns ``{"n", "mean", "sd", "ci_low", "ci_high", "t", "p"}``; sd with n − 1. With n < 2 the interval
    and p are NaN; with all values equal (sd 0) the interval is the point and t, p are NaN. Raises
    ValueError for an empty input."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    n, mean = len(x), float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": sd, "ci_low": math.nan, "ci_high": math.nan, "t": math.nan, "p": math.nan}
    if sd == 0:
        return {"n": n, "mean": mean, "sd": 0.0, "ci_low": mean, "ci_high": mean, "t": math.nan, "p": math.nan}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    test = stats.ttest_1samp(x, 0.0)
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half,
            "t": float(test.statistic), "p": float(test.pvalue)}


def format_interval(t: dict, unit: str = " pp", digits: int = 1) -> str:
    """A ``t_interval`` for a report: "+1.9 pp [-2.1, +5.9], p = 0.1721" (mean and bounds to ``digits``
    decimals, ``unit`` after the mean, ``stats.paired.format_p``); "+1.9 pp (no interval: 1 seed)" when the
    interval is undefined (``t_interval`` of a single value)."""
    f = f"+.{digits}f"
    if math.isnan(t["ci_low"]) or math.isnan(t["ci_high"]):  # t_interval of one value
        return f"{t['mean']:{f}}{unit} (no interval: 1 seed)"
    return f"{t['mean']:{f}}{unit} [{t['ci_low']:{f}}, {t['ci_high']:{f}}], p = {format_p(t['p'])}"


def complete_seeds(by_cell: dict[str, dict[int, dict]], cells: list[str], metric: str) -> list[int]:
    """Seeds for which every one of ``cells`` has a run with ``metric`` (complete blocks only), sorted."""
    common = set.intersection(*(set(by_cell.get(c, {})) for c in cells)) if cells else set()
    return sorted(s for s in common if all(by_cell[c][s].get(metric) is not None for c in cells))


def split_effect(by_cell: dict[str, dict[int, dict]], base: str, cell: str, seeds: list[int]) -> dict:
    """Exact match's seed-paired ``cell`` − ``base`` split into ``{"content", "termination"}``: a
    ``t_interval`` of each part of ``termination.split_delta`` over ``seeds`` (the parts sum to the Δ per seed,
    in pp). Every run of both cells at those seeds needs ``exact_match``, ``stopped`` and ``contains_target``;
    raises ValueError for no seeds, KeyError for a missing run or metric."""
    parts = np.array([split_delta(by_cell[base][s], by_cell[cell][s]) for s in seeds], dtype=float)
    if parts.size == 0:
        raise ValueError(f"split_effect of {cell!r} − {base!r} needs at least one seed")
    return {"content": t_interval(parts[:, 0]), "termination": t_interval(parts[:, 1])}


def interaction(by_cell: dict[str, dict[int, dict]], base_a: str, treated_a: str, base_b: str, treated_b: str,
                metric: str = "exact_match") -> dict:
    """The seed-paired 2 × 2 on ``metric`` (``by_cell``: cell → seed → metrics).

    Returns ``{"seeds", "cells": {cell: t_interval of its values}, "effect_a", "effect_b", "interaction"}``,
    each effect a ``t_interval`` of per-seed differences plus, where every run has ``contains_target``,
    ``content`` and ``termination`` (t_intervals of the ``split_delta`` parts, which sum to the effect per
    seed). Raises ValueError if fewer than 2 complete seed blocks exist."""
    names = [base_a, treated_a, base_b, treated_b]
    seeds = complete_seeds(by_cell, names, metric)
    if len(seeds) < 2:
        raise ValueError(f"need ≥ 2 seeds with all of {names}; complete: {seeds}")
    value = {c: np.array([by_cell[c][s][metric] for s in seeds], dtype=float) for c in names}
    out = {"seeds": seeds, "metric": metric, "cells": {c: t_interval(v) for c, v in value.items()}}
    for key, (base, treated) in (("effect_a", (base_a, treated_a)), ("effect_b", (base_b, treated_b))):
        effect = t_interval(value[treated] - value[base])
        if metric == "exact_match" and all("contains_target" in by_cell[c][s] for c in (base, treated) for s in seeds):
            effect.update(split_effect(by_cell, base, treated, seeds))
        out[key] = effect
    out["interaction"] = t_interval((value[treated_b] - value[base_b]) - (value[treated_a] - value[base_a]))
    return out


def row_level_model(frame, outcome: str = "exact", min_successes: int = 5) -> dict:
    """``outcome ~ treated * b`` over rows × seeds, clustered by test row.

    ``frame``: a pandas DataFrame with columns ``outcome`` (0/1), ``treated`` (0/1), ``b`` (0/1, the second
    conditions) and ``row`` (the test row's id). Logistic GEE (binomial, exchangeable) when every cell has
    ≥ ``min_successes`` and ≥ ``min_successes`` failures; the interaction's odds ratio and 95 % interval.
    Otherwise (quasi-separation) the linear probability model by OLS with cluster-robust (row) standard
    errors, the interaction in percentage points. Returns ``{"model", "estimate", "ci_low", "ci_high", "p",
    "unit", "why"}``."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    counts = frame.groupby(["treated", "b"])[outcome].agg(["sum", "count"])
    separated = bool(((counts["sum"] < min_successes) | (counts["count"] - counts["sum"] < min_successes)).any())
    formula = f"{outcome} ~ treated * b"
    if not separated:
        fit = smf.gee(formula, groups="row", data=frame, family=sm.families.Binomial(),
                      cov_struct=sm.cov_struct.Exchangeable()).fit()
        low, high = fit.conf_int().loc["treated:b"]
        return {"model": "logistic GEE (binomial, exchangeable, clusters = test rows)", "unit": "odds ratio",
                "estimate": float(np.exp(fit.params["treated:b"])), "ci_low": float(np.exp(low)),
                "ci_high": float(np.exp(high)), "p": float(fit.pvalues["treated:b"]), "why": ""}
    fit = smf.ols(formula, data=frame).fit(cov_type="cluster", cov_kwds={"groups": frame["row"]})
    low, high = fit.conf_int().loc["treated:b"]
    return {"model": "linear probability model (OLS, cluster-robust by test row)", "unit": "pp",
            "estimate": 100 * float(fit.params["treated:b"]), "ci_low": 100 * float(low), "ci_high": 100 * float(high),
            "p": float(fit.pvalues["treated:b"]),
            "why": f"a cell has fewer than {min_successes} successes or failures: the logistic odds ratio is not "
                   "estimable (quasi-separation)"}
