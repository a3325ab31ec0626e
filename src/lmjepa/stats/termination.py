"""Is a change in exact match carried by content or by termination?

Exact match implies the prediction contains the target (``evaluation/diagnostics.py``), so per run

    exact = contains · clean / 100,   clean = 100 · exact / contains   (both in percent)

where ``clean`` is the share of the predictions that contain the target which are also exact (they
stopped right after it). For a seed-paired (baseline → cell) difference the product splits exactly
(the symmetric, Shapley split of a product of two factors):

    Δexact = Δcontains · (clean₀ + clean₁) / 200  +  Δclean · (contains₀ + contains₁) / 200
             └────────── content ──────────┘        └────────── termination ─────────┘

Averaged over the paired seeds, the two parts add up to the mean Δ exact match. ``stopped`` and
``mean_extra_tokens`` are shown beside them as the termination's symptoms.
"""

from __future__ import annotations

import math

import numpy as np


def split_delta(base: dict, cell: dict) -> tuple[float, float]:
    """``(content, termination)`` parts of ``cell.exact_match − base.exact_match`` (percentage points).

    ``base`` / ``cell``: one run's metrics with ``exact_match`` and ``contains_target`` in percent.
    A run whose predictions never contain the target has ``clean`` = 0. The parts sum to Δ exact.
    """
    def clean(m):
        return 100.0 * m["exact_match"] / m["contains_target"] if m["contains_target"] else 0.0

    c0, c1, k0, k1 = base["contains_target"], cell["contains_target"], clean(base), clean(cell)
    return (c1 - c0) * (k0 + k1) / 200.0, (k1 - k0) * (c0 + c1) / 200.0


def decompose(by_cell: dict[str, dict[int, dict]], baseline: str) -> dict[str, dict]:
    """Per cell (vs ``baseline``, paired by seed): mean Δ exact match and its content / termination
    parts, and the mean Δ of ``stopped`` and ``mean_extra_tokens`` where every paired run has them.

    ``by_cell``: cell → seed → metrics. Cells whose runs lack ``contains_target`` are left out.
    Returns cell → ``{"seeds", "delta_exact", "content", "termination", "delta_contains",
    "delta_stopped", "delta_extra_tokens", "carried_by"}``.
    """
    out = {}
    for cell in sorted(c for c in by_cell if c != baseline):
        seeds = sorted(s for s in set(by_cell[cell]) & set(by_cell[baseline])
                       if all("contains_target" in by_cell[c][s] and "exact_match" in by_cell[c][s]
                              for c in (cell, baseline)))
        if not seeds:
            continue
        pairs = [(by_cell[baseline][s], by_cell[cell][s]) for s in seeds]
        parts = np.array([split_delta(b, c) for b, c in pairs])

        def mean_delta(key):
            values = [(c[key] - b[key]) for b, c in pairs if b.get(key) is not None and c.get(key) is not None]
            return float(np.mean(values)) if len(values) == len(pairs) else None

        content, termination = float(parts[:, 0].mean()), float(parts[:, 1].mean())
        out[cell] = {"seeds": seeds, "delta_exact": mean_delta("exact_match"), "content": content,
                     "termination": termination, "delta_contains": mean_delta("contains_target"),
                     "delta_stopped": mean_delta("stopped"), "delta_extra_tokens": mean_delta("mean_extra_tokens"),
                     "carried_by": carried_by(content, termination)}
    return out


def carried_by(content: float, termination: float, tolerance: float = 0.05) -> str:
    """``content``, ``termination``, ``both`` (each carries at least a third of the total absolute
    change) or ``neither`` (both parts within ``tolerance`` pp of zero)."""
    if abs(content) <= tolerance and abs(termination) <= tolerance:
        return "neither"
    total = abs(content) + abs(termination)
    if min(abs(content), abs(termination)) >= total / 3:
        return "both"
    return "content" if abs(content) > abs(termination) else "termination"


def _pp(value: float | None, unit: str = " pp") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.2f}{unit}"


def render_lines(decomposition: dict[str, dict], baseline: str | None) -> list[str]:
    """Markdown: one line per cell saying what carries its change in exact match (against ``baseline``;
    None: each key names its own pair, as ``stats.contrasts`` does)."""
    if not decomposition:
        return []
    against = f"vs `{baseline}`" if baseline is not None else "each cell vs its reference"
    lines = ["", f"Why exact match moved ({against}; exact = contains target × clean stop, split exactly per "
             "seed pair, then averaged; `evaluation/diagnostics.py`):", ""]
    for cell, d in decomposition.items():
        lines.append(f"- **{cell}**: Δ exact {_pp(d['delta_exact'])} = content {_pp(d['content'])} (Δ contains target "
                     f"{_pp(d['delta_contains'])}) + termination {_pp(d['termination'])} (Δ stopped "
                     f"{_pp(d['delta_stopped'])}, Δ extra tokens {_pp(d['delta_extra_tokens'], '')}) → carried by "
                     f"**{d['carried_by']}** ({len(d['seeds'])} seed pairs).")
    return lines
