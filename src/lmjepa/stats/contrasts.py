"""Declared contrasts: each cell against a reference cell of its own, for the factors of a design.

``compare`` asks whether each cell beats one baseline. A factorial question needs other pairs: does
LLM-JEPA help *under the official training conditions* (``llm-jepa-official`` vs ``ntp-official``), *in the
small-data regime* (``llm-jepa-small`` vs ``ntp-small``), does the view definition matter
(``llm-jepa-chat`` vs ``llm-jepa-content``)? A contrast pairs the two cells by seed like ``compare`` (the
same ``paired_tests``) and corrects over its own declared family — contrasts × metrics, its size stated —
so adding contrasts never weakens the baseline table's correction. A factor may move a metric either
way, so the decision is the two-sided paired t-test after correction; the one-sided p (H1: cell >
reference, the LLM-JEPA protocol) is reported beside it.
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from .compare import runs_by_cell, paired_tests
from .paired import format_p
from .termination import decompose, render_lines


def contrast(rows: list[dict], pairs: list[tuple[str, str]], metrics: list[str], correction: str = "holm",
             alpha: float = 0.05) -> dict:
    """Seed-paired tests of each ``(cell, reference)`` pair for each metric, ``correction`` (``holm`` or
    ``bonferroni``) over the family of pairs × metrics, plus each pair's content/termination split of
    Δ exact match (``stats.termination``, keyed ``"cell vs reference"``).

    Returns ``{"pairs", "metrics", "correction", "alpha", "family_size", "tests", "termination"}``; each
    test as ``compare``'s (Δ = cell − reference, in the metric's unit: percentage points for percents).
    Raises ConfigError if a named cell has no rows, DataError if a pair shares fewer than 2 seeds.
    """
    by_cell, _ = runs_by_cell(rows, metrics)
    for cell, reference in pairs:
        for name in (cell, reference):
            if name not in by_cell:
                raise ConfigError(f"contrast {cell} vs {reference}: no runs of cell {name!r} "
                                  f"(cells: {sorted(by_cell)})")
    tests = paired_tests(by_cell, list(pairs), metrics, correction, alpha)
    termination = {}
    for cell, reference in pairs:
        split = decompose({cell: by_cell[cell], reference: by_cell[reference]}, reference).get(cell)
        if split:
            termination[f"{cell} vs {reference}"] = split
    return {"pairs": [list(p) for p in pairs], "metrics": list(metrics), "correction": correction, "alpha": alpha,
            "family_size": len(tests), "tests": tests, "termination": termination}


def decision(test: dict) -> str:
    """``**up**`` / ``**down**`` when the two-sided test rejects after correction, else ``no evidence``."""
    if not test["reject_two_sided"]:
        return "no evidence"
    return "**up**" if test["delta"] > 0 else "**down**"


def render_contrasts(result: dict, bonferroni: dict | None = None) -> list[str]:
    """Markdown lines: the contrast table (Holm or the result's correction; Bonferroni's two-sided p beside
    it when ``bonferroni``, the same tests corrected that way, is given) and each pair's termination split."""
    if not result["tests"]:
        return []
    other = {(t["cell"], t["reference"], t["metric"]): t for t in (bonferroni or {}).get("tests", [])}
    lines = ["", "## Factor contrasts", "",
             f"Each cell against its own reference cell, paired by seed. Family: {result['family_size']} tests "
             f"(contrasts × metrics), {result['correction']} correction at α = {result['alpha']}, separate from the "
             "baseline table's. Decision: two-sided paired t-test after correction (a factor may move a metric "
             "either way); the one-sided p (H1: cell > reference) is beside it. MDE: as in the baseline table "
             "(one-sided, at α/family).", "",
             "| cell | reference | metric | n | reference mean | cell mean | Δ [95% CI] | MDE | d_z | "
             "p (t, 1-sided) | p (t, 2-sided) | " + f"{result['correction']} (2-sided) | "
             + ("Bonferroni (2-sided) | " if bonferroni else "") + "decision |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if bonferroni else "") + "---|"]
    for t in result["tests"]:
        dz = "n/a" if math.isnan(t["cohens_dz"]) else f"{t['cohens_dz']:.2f}"
        bonf = other.get((t["cell"], t["reference"], t["metric"]))
        mde = t.get("mde_one_sided", math.nan)
        lines.append(f"| {t['cell']} | {t['reference']} | {t['metric']} | {t['n']} | {t['baseline_mean']:.2f} ± "
                     f"{t['baseline_sd']:.2f} | {t['cell_mean']:.2f} ± {t['cell_sd']:.2f} | {t['delta']:+.2f} "
                     f"[{t['ci_low']:+.2f}, {t['ci_high']:+.2f}] | "
                     f"{'n/a' if math.isnan(mde) else f'{mde:.2f}'} | {dz} | {format_p(t['p_t_one_sided'])} | "
                     f"{format_p(t['p_t_two_sided'])} | {format_p(t['p_t_two_sided_corrected'])} | "
                     + (f"{format_p(bonf['p_t_two_sided_corrected'])} | " if bonferroni and bonf else
                        ("– | " if bonferroni else "")) + f"{decision(t)} |")
    return lines + render_lines(result["termination"], None)
