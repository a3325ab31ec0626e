"""How generations end, per cell of a 2 × 2 (an exploratory view of termination; issue 33).

Each prediction falls in one of ``evaluation.diagnostics.ENDINGS`` (exact; the target, then a line break;
the target, then more on its line; the target elsewhere; no target). Per run the shares are percentages of
its rows; per cell they are summarised over seeds, and the treated − base difference under each condition
is seed-paired with a t-interval (``stats.interaction.t_interval``).

    shares = ending_shares(run_predictions(design, folder, rows, seeds))
    lines = render_endings(design, shares, seeds)
"""

from __future__ import annotations

import numpy as np

from ..evaluation.diagnostics import ENDINGS, ending
from ..stats.interaction import format_interval, t_interval


def ending_shares(runs: list[tuple[dict, list[dict]]]) -> dict[str, dict[int, dict[str, float]]]:
    """cell → seed → ending → share of the run's rows (percent), from ``factorial.run_predictions``' (row,
    predictions) pairs; each prediction needs ``prediction`` and ``reference``. Raises KeyError otherwise."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for row, predictions in runs:
        kinds = [ending(str(p["prediction"]), str(p["reference"])) for p in predictions]
        out.setdefault(row["cell"], {})[row["seed"]] = {k: 100.0 * kinds.count(k) / len(kinds) for k in ENDINGS}
    return out


def render_endings(design, shares: dict[str, dict[int, dict[str, float]]], seeds: list[int]) -> list[str]:
    """A Markdown table: one row per ending, each cell's mean ± sd over ``seeds`` (percent), and the treated −
    base difference under each condition of ``design`` (``factorial.Design``; pp, 95 % t-interval, p)."""
    pairs = ((design.base_a, design.treated_a), (design.base_b, design.treated_b))
    head = ["ending"] + [f"`{c}`" for c in design.cells] + [f"{design.objectives[1]} − {design.objectives[0]}, {c}"
                                                            for c in design.conditions]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for kind in ENDINGS:
        values = {c: np.array([shares[c][s][kind] for s in seeds]) for c in design.cells}
        means = [f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}" for v in values.values()]
        deltas = [format_interval(t_interval(values[t] - values[b])) for b, t in pairs]
        out.append(f"| {kind} | " + " | ".join(means + deltas) + " |")
    return out
