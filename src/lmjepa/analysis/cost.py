"""What each cell of a results store cost to run, next to what it gained: the ``lmjepa compare`` report's
"Cost" section.

A JEPA objective costs extra forward passes (LLM-JEPA's second view, the predictor tokens); a user deciding
whether it helps wants the price beside the effect. Three measures, each the median over a cell's runs of a
row's own record (seconds):

* ``train_seconds``: training, wall clock, summed over every process that trained the run (``TrainingClock``);
* ``train_cpu_seconds``: training, CPU (user + system, every thread), which a paused process does not accrue
  (sharing the cores with another job can still raise it); rows from lmjepa 141d395 on;
* ``wall_seconds``: the whole run as the sweep timed it (loading, training, evaluation).

Each is shown with its ratio to the baseline cell's median. A row lacking a measure is left out of that
column, and the table says how many runs each median has when that differs from the cell's runs; a measure
no row records has no column. A two-stage store's rows are listed per stage, ``"<cell> (pretrain)"``, each
against the baseline's run of the same stage.
"""

from __future__ import annotations

import statistics

MEASURES = (("train_seconds", "training, wall"), ("train_cpu_seconds", "training, CPU"),
            ("wall_seconds", "whole run, wall"))


def cell_label(row: dict) -> str:
    """A row's cell, with its stage in a two-stage store: "llm-jepa (pretrain)"."""
    return f"{row['cell']} ({row['stage']})" if row.get("stage") else str(row["cell"])


def _seconds(row: dict, key: str) -> float | None:
    value = row.get(key) if key == "wall_seconds" else (row.get("metrics") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def cost_by_cell(rows: list[dict]) -> dict[str, dict]:
    """label → ``{"runs": n, "stage": str | None, measure: [seconds, ...]}`` for each of ``MEASURES`` (the
    rows that record it), in the rows' order of first appearance. ``rows``: store rows (``cell``, ``metrics``;
    optional ``stage``, ``wall_seconds``)."""
    cells: dict[str, dict] = {}
    for row in rows:
        entry = cells.setdefault(cell_label(row), {"runs": 0, "stage": row.get("stage"),
                                               **{key: [] for key, _ in MEASURES}})
        entry["runs"] += 1
        for key, _ in MEASURES:
            seconds = _seconds(row, key)
            if seconds is not None:
                entry[key].append(seconds)
    return cells


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def render_cost(rows: list[dict], baseline: str, title: str = "Cost", note: str = "") -> list[str]:
    """The report's ``title`` section as Markdown lines (``note`` ends its opening paragraph): per cell and
    measure, the median (s, min or h) and its ratio to ``baseline``'s median (of the same stage in a two-stage
    store; "–" where a cell has no record of it). A measure no row records has no column; no section (``[]``) when no row records any."""
    cells = cost_by_cell(rows)
    measures = [(key, name) for key, name in MEASURES if any(entry[key] for entry in cells.values())]
    if not measures:
        return []
    lines = ["", f"## {title}", "",
             f"Median seconds per run, each with its ratio to `{baseline}` (`analysis.cost`): training on the wall "
             "clock and in CPU seconds (summed over every process that trained the run; CPU seconds are not "
             "moved by a pause), and the whole run as the sweep timed it. They are as recorded on the machines "
             "that made the runs." + (f" {note}" if note else ""), "",
             "| cell | runs | " + " | ".join(name for _, name in measures) + " |",
             "|---|---|" + "---|" * len(measures)]
    for label, entry in cells.items():
        columns = []
        for key, _ in measures:
            values = entry[key]
            if not values:
                columns.append("–")
                continue
            median = statistics.median(values)
            text = _duration(median)
            base = cells.get(cell_label({"cell": baseline, "stage": entry["stage"]}), {})
            if base.get(key) and base is not entry:
                text += f" (×{median / statistics.median(base[key]):.2f})"
            if len(values) != entry["runs"]:
                text += f", {len(values)} of {entry['runs']} runs"
            columns.append(text)
        lines.append(f"| `{label}` | {entry['runs']} | " + " | ".join(columns) + " |")
    return lines
