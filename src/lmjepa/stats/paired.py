"""Paired statistics for seed-matched runs (the audit's protocol), built on scipy and statsmodels.

A *cell* (a configuration) is compared with a *baseline* cell on one benchmark metric, pairing runs
by seed (same data order and initialisation). Differences are d_i = cell_i − baseline_i.

* paired t-test (scipy ``ttest_rel``), one-sided (H1: cell > baseline, as LLM-JEPA reports) and
  two-sided;
* Wilcoxon signed-rank test, exact under ties and zero differences: the sign-flip permutation
  distribution of the signed-rank statistic with average ranks (scipy ``wilcoxon`` with
  ``PermutationMethod``, all 2^n flips up to n = 16), zero differences dropped (``zero_method="wilcox"``);
  with the smallest p-value it can reach at this n — for n = 5 that is 0.0625 two-sided, so at n = 5 it
  can never reject at α = 0.05 two-sided, and the result says so;
* 95 % CI of mean(d): the **t-interval** at n ≤ 10 pairs (a percentile bootstrap of 5 pairs is too
  narrow), the BCa bootstrap above (scipy ``bootstrap``, seeded); ``ci_method`` names it;
* Cohen's d_z = mean(d) / sd(d) (sd with n − 1);
* family-wise correction over all (cell, benchmark) tests: Bonferroni, Holm (default) or
  Benjamini–Hochberg (statsmodels ``multipletests``); the family size is reported;
* McNemar's exact test on per-example correctness of two runs (statsmodels ``mcnemar``);
* the minimum detectable effect of the design (statsmodels ``TTestPower``): what a null can rule out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as _mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

CORRECTIONS = {"bonferroni": "bonferroni", "holm": "holm", "bh": "fdr_bh"}


@dataclass
class PairedResult:
    """One cell vs the baseline on one metric. Differences and means are in the metric's unit."""

    n: int
    baseline_mean: float
    baseline_sd: float
    cell_mean: float
    cell_sd: float
    delta: float  # mean(cell − baseline)
    t: float
    p_t_one_sided: float  # H1: cell > baseline
    p_t_two_sided: float
    p_wilcoxon_two_sided: float
    wilcoxon_nonzero: int  # pairs with a non-zero difference (the exact test's n)
    wilcoxon_min_p_two_sided: float  # the smallest p the exact test can give at this n
    wilcoxon_can_reject: bool  # min attainable p ≤ α
    ci_low: float  # 95 % CI of delta: t-interval at n ≤ 10, BCa bootstrap above (ci_method)
    ci_high: float
    cohens_dz: float
    sd_delta: float  # sd of the paired differences (n − 1)
    ci_method: str = "t"  # "t" (t-interval, n ≤ T_INTERVAL_MAX_N) or "BCa bootstrap"

    def to_dict(self) -> dict:
        return asdict(self)


def wilcoxon_min_p(n: int, two_sided: bool = True) -> float:
    """Smallest p-value of the exact Wilcoxon signed-rank test with n non-zero pairs: 2^-n (one-sided)."""
    return min(1.0, (2.0 if two_sided else 1.0) / 2**n)


def bootstrap_ci(d: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(d), resampling pairs with replacement (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


T_INTERVAL_MAX_N = 10


def mean_ci(d: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float, str]:
    """(low, high, method) of the CI of mean(d): the t-interval (df = n − 1) at n ≤ ``T_INTERVAL_MAX_N``,
    else the BCa bootstrap (scipy ``bootstrap``, 10,000 resamples, seeded). With sd 0 the interval is the
    point."""
    d = np.asarray(d, dtype=float)
    if d.std() == 0:
        return float(d.mean()), float(d.mean()), "t"
    if len(d) <= T_INTERVAL_MAX_N:
        low, high = stats.t.interval(level, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        return float(low), float(high), "t"
    result = stats.bootstrap((d,), np.mean, confidence_level=level, method="BCa", n_resamples=10_000,
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high), "BCa bootstrap"


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the differences ``d``, exact under ties and zeros: zeros dropped,
    average ranks, the sign-flip permutation distribution (all 2^n flips up to n = 16, else 65,536 seeded
    draws). 1.0 when at most one difference is non-zero (its two sign flips are equally extreme)."""
    d = np.asarray(d, dtype=float)
    nonzero = d[d != 0]
    if len(nonzero) <= 1:
        return 1.0
    flips = 2 ** len(nonzero)
    method = stats.PermutationMethod(n_resamples=flips if flips <= 2**16 else 2**16,
                                     random_state=np.random.default_rng(0))
    return float(stats.wilcoxon(nonzero, method=method).pvalue)


def paired_comparison(baseline, cell, alpha: float = 0.05, seed: int = 0) -> PairedResult:
    """Compare seed-paired values (equal-length sequences, same seed order).

    Raises ValueError if lengths differ or n < 2. With all differences equal the t statistic is
    undefined: t and its p-values are NaN (never a made-up "significant").
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(cell, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length 1-D sequences, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("a paired comparison needs at least 2 seeds")
    d = b - a
    sd = d.std(ddof=1)
    if sd > 0:
        t_two = stats.ttest_rel(b, a)
        t_one = stats.ttest_rel(b, a, alternative="greater")
        t, p_one, p_two = float(t_two.statistic), float(t_one.pvalue), float(t_two.pvalue)
    else:
        t = p_one = p_two = math.nan
    nonzero = int(np.count_nonzero(d))
    p_w = wilcoxon_p(d)
    low, high, method = mean_ci(d, seed=seed)
    return PairedResult(
        n=len(d), baseline_mean=float(a.mean()), baseline_sd=float(a.std(ddof=1)),
        cell_mean=float(b.mean()), cell_sd=float(b.std(ddof=1)), delta=float(d.mean()),
        t=t, p_t_one_sided=p_one, p_t_two_sided=p_two,
        p_wilcoxon_two_sided=p_w, wilcoxon_nonzero=nonzero, wilcoxon_min_p_two_sided=wilcoxon_min_p(nonzero),
        wilcoxon_can_reject=wilcoxon_min_p(nonzero) <= alpha,
        ci_low=low, ci_high=high, cohens_dz=float(d.mean() / sd) if sd > 0 else math.nan, sd_delta=float(sd), ci_method=method,
    )


def minimum_detectable_effect(sd_delta: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest true mean difference (in the metric's unit, e.g. pp) that a one-sided paired t-test on
    ``n`` pairs with this sd of the differences detects with probability ``power`` at level ``alpha``: the
    noncentral-t power of a one-sample t-test (statsmodels ``TTestPower``, ``alternative="larger"``) solved
    for Cohen's d_z, times ``sd_delta``. An effect this large is detected with probability ``power``; a null
    result says little about smaller ones.
    Returns NaN when n < 2 or sd_delta is not a positive number. Raises ValueError unless 0 < alpha < 1 and
    0 < power < 1."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha {alpha} and power {power} must lie in (0, 1)")
    if n < 2 or not sd_delta > 0:
        return math.nan
    d_z = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="larger")
    return float(np.squeeze(d_z)) * sd_delta


def seeds_needed(delta: float, sd_delta: float, alpha: float, power: float = 0.8) -> int | None:
    """How many seed pairs a one-sided paired t-test needs to detect a true mean difference ``delta`` (> 0)
    with probability ``power`` at level ``alpha``, if the differences have sd ``sd_delta``: the smallest
    integer n ≥ 2 whose noncentral-t power reaches ``power`` (statsmodels ``TTestPower``). None when delta or
    sd_delta is not a positive number (no gain to detect, or no noise estimate). Raises ValueError unless
    0 < alpha < 1 and 0 < power < 1."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha {alpha} and power {power} must lie in (0, 1)")
    if not (delta > 0 and sd_delta > 0):
        return None
    analysis, d_z = TTestPower(), delta / sd_delta

    def reaches(n: int) -> bool:
        return analysis.power(effect_size=d_z, nobs=n, alpha=alpha, alternative="larger") >= power

    # start from the normal approximation (within a few pairs of the answer; statsmodels' own root finder
    # returns NaN for large effects), then step to the first n whose t-test power reaches ``power``
    n = max(2, math.ceil(((stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)) / d_z) ** 2))
    while n > 2 and reaches(n - 1):
        n -= 1
    while not reaches(n):
        n += 1
    return n


def correct(p_values: list[float], method: str = "holm", alpha: float = 0.05) -> tuple[list[bool], list[float]]:
    """Family-wise corrected decisions and adjusted p-values over the whole family.

    ``method``: ``bonferroni``, ``holm`` or ``bh`` (Benjamini–Hochberg, controls FDR instead).
    NaN p-values (undefined tests) count in the family size and are never rejected.
    Raises ValueError on an unknown method.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {sorted(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    filled = np.where(np.isnan(p), 1.0, p)
    reject, adjusted, _, _ = multipletests(filled, alpha=alpha, method=CORRECTIONS[method])
    adjusted = np.where(np.isnan(p), np.nan, adjusted)
    return [bool(r) and not math.isnan(x) for r, x in zip(reject, p)], [float(x) for x in adjusted]


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's exact test on per-example correctness of two runs over the same examples.

    Returns ``{"b": a right & b wrong, "c": a wrong & b right, "p": exact two-sided p}``.
    Raises ValueError if the runs cover different numbers of examples.
    """
    x, y = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"runs cover {x.size} and {y.size} examples")
    table = [[int(np.sum(x & y)), int(np.sum(x & ~y))], [int(np.sum(~x & y)), int(np.sum(~x & ~y))]]
    result = _mcnemar(table, exact=True)
    return {"b": table[0][1], "c": table[1][0], "p": float(result.pvalue)}


def format_p(value: float | None) -> str:
    """A p-value for a report: four decimals, or two significant digits below 1e-4 (never a bare 0.0000)."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.1e}" if 0 < value < 1e-4 else f"{value:.4f}"
