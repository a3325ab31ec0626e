"""How generations end, per cell of a 2 × 2 (an exploratory view of termination; issue 33).

Each prediction falls in one of ``evaluation.diagnostics.ENDINGS`` (exact; the target, then a line break;
the target, then more on its line; the target elsewhere; no target). Per run the shares are percentages of
its rows; per cell they are summarised over seeds, and the treated − base difference under each condition
is seed-paired with a t-interval (``stats.interaction.t_interval``).

    shares = ending_shares(run_predictions(design, folder, rows, seeds))
    lines = render_endings(design, shares, seeds)
    plot_endings(design, shares, seeds, "endings.png")
"""

from __future__ import annotations

from pathlib import Path

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


def plot_endings(design, shares: dict[str, dict[int, dict[str, float]]], seeds: list[int],
                 path: str | Path) -> np.ndarray:
    """Stacked bars (PNG at ``path``): one bar per cell of ``design``, split into the mean share over ``seeds``
    (percent) of each of ``ENDINGS``, in that order. Returns the drawn widths, ``(cells, len(ENDINGS))`` float,
    each row summing to 100. Raises KeyError if a cell lacks one of ``seeds``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(design.cells)
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(cells) + 1.6))
    widths = np.array([[np.mean([shares[c][s][kind] for s in seeds]) for kind in ENDINGS] for c in cells])
    left = np.zeros(len(cells))
    for i, kind in enumerate(ENDINGS):
        width = widths[:, i]
        ax.barh(range(len(cells)), width, left=left, color=f"C{i}", label=kind)
        for y, (x, w) in enumerate(zip(left, width)):
            if w >= 6:  # label the segments wide enough to hold a number
                ax.text(x + w / 2, y, f"{w:.0f}", ha="center", va="center", fontsize=8, color="white")
        left += width
    ax.set_yticks(range(len(cells)), cells)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"share of test rows, % (mean over {len(seeds)} seeds)")
    ax.legend(ncol=3, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return widths
