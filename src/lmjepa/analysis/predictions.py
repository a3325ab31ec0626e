"""Pre-registered predictions checked against the records, and seed-paired comparisons of extra cells
(issue 33: "keep every prediction"; docs/results/dispute-nlrx/PREREGISTRATION.md, "Predictions" and
secondary analysis 5).

A ``Prediction`` names one quantity of a results store and the range it was predicted to fall in:

- a cell's mean of a metric over seeds (``Prediction("…", "ntp", low=60, high=72)``);
- a seed-paired difference, cell − base (``base="ntp"``);
- the share of a seed-paired Δ exact match carried by its termination part (``part="termination"``:
  mean termination part / mean Δ, ``stats.termination.split_delta``), defined only for a positive Δ.

``check`` computes each over the given seeds at which its cells all have runs, and judges it: **held** (the mean is in
the range and so is the whole 95 % t-interval), **held by the mean** (the interval crosses a bound), or
**not held**. A share has no interval, so it is judged on its value alone.

    from lmjepa.analysis.predictions import Prediction, check, render_checks
    lines = render_checks(check([Prediction("ntp: 60–72 % exact", "ntp", low=60, high=72)], by_cell, seeds))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigBase, from_dict, read_yaml
from ..errors import ConfigError
from ..stats.interaction import complete_seeds, format_interval, split_effect, t_interval

PARTS = (None, "termination")
RULE = ("Each prediction is computed over the seeds at which all of its cells have runs (in a 2 × 2, within the "
        "complete seed blocks). It is **held** when its mean and its whole 95 % t-interval lie in the predicted "
        "range, **held by the mean** when only the mean does, and **not held** otherwise; the termination share "
        "(mean termination part / mean Δ) has no interval and is judged on its value.")


@dataclass(frozen=True)
class Prediction(ConfigBase):
    """One pre-registered claim: ``quantity`` ∈ [``low``, ``high``] (open bounds with ``strict``), where the
    quantity is ``cell``'s mean of ``metric`` (in the metric's unit, e.g. percent), or with ``base`` the
    seed-paired mean of cell − base (pp), or with ``part="termination"`` the share of that Δ carried by
    termination (a fraction). ``text``: the claim as the pre-registration words it.
    Raises ValueError for an empty or absent range, a ``base`` equal to ``cell``, an unknown ``part``, or a
    ``part`` without ``base``."""

    text: str
    cell: str
    metric: str = "exact_match"
    base: str | None = None
    low: float = -math.inf
    high: float = math.inf
    strict: bool = False
    part: str | None = None

    def __post_init__(self):
        if not self.low <= self.high or (self.strict and self.low == self.high):
            raise ValueError(f"prediction {self.text!r}: empty range [{self.low}, {self.high}]")
        if self.low == -math.inf and self.high == math.inf:
            raise ValueError(f"prediction {self.text!r}: names no range (set low, high or both)")
        if self.base == self.cell:
            raise ValueError(f"prediction {self.text!r}: base and cell are both {self.cell!r}")
        if self.part not in PARTS:
            raise ValueError(f"prediction {self.text!r}: part must be one of {PARTS}, got {self.part!r}")
        if self.part and (self.base is None or self.metric != "exact_match"):
            raise ValueError(f"prediction {self.text!r}: part={self.part!r} needs base= and metric exact_match")

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the predicted range."""
        if self.strict:
            return self.low < value < self.high
        return self.low <= value <= self.high

    def quantity(self) -> str:
        """The quantity in words, e.g. "`llm-jepa` − `ntp`, exact_match (pp)"."""
        if self.part:
            return f"{self.part} part / Δ of `{self.cell}` − `{self.base}`, exact_match"
        if self.base:
            return f"`{self.cell}` − `{self.base}`, {self.metric} (pp)"
        return f"`{self.cell}`, {self.metric}"

    def range(self) -> str:
        """The predicted range in symbols: "60 to 72", "≤ 2", "> 90"."""
        lo, hi = ("> ", "< ") if self.strict else ("≥ ", "≤ ")
        if self.low == -math.inf:
            return hi + f"{self.high:g}"
        if self.high == math.inf:
            return lo + f"{self.low:g}"
        return f"{self.low:g} to {self.high:g}" + (" (open)" if self.strict else "")


def load_predictions(path: str | Path) -> list[Prediction]:
    """The predictions of a YAML file: a mapping with one key, ``predictions``, a list of mappings with the
    fields of ``Prediction`` (``text`` and ``cell`` required; ``.inf`` / ``-.inf`` for an open end).

        predictions:
          - {text: "llm-jepa − ntp within ±3 pp", cell: llm-jepa, base: ntp, low: -3, high: 3}

    Raises ConfigError naming the file and the prediction's index for a missing file, invalid YAML, an unknown
    key (suggesting the closest), a value of the wrong type, a missing ``text`` or ``cell`` or an empty range."""
    values = read_yaml(path)
    if set(values) != {"predictions"} or not isinstance(values["predictions"], list) or not values["predictions"]:
        raise ConfigError(f"{path}: expects one key, `predictions`, a non-empty list; got keys {sorted(values)}")
    out = []
    for index, item in enumerate(values["predictions"]):
        where = f"{path}: predictions[{index}]"
        if not isinstance(item, dict) or not {"text", "cell"} <= set(item):
            raise ConfigError(f"{where}: expects a mapping with at least `text` and `cell`, got {item!r}")
        try:
            out.append(from_dict(item, Prediction))
        except (ConfigError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
    return out


def check_names(predictions: list[Prediction], by_cell: dict[str, dict[int, dict]], where: str = "") -> None:
    """Raise ConfigError (prefixed with ``where``, e.g. the store) if a prediction names a cell that has no
    runs in ``by_cell`` or a metric that no run of its cells records (the error lists what they record)."""
    for index, prediction in enumerate(predictions):
        cells = [prediction.cell] + ([prediction.base] if prediction.base else [])
        missing = [c for c in cells if c not in by_cell]
        if missing:
            raise ConfigError(f"{where}no runs of cell(s) {missing} (prediction {index}, {prediction.text!r}); "
                              f"the store has {sorted(by_cell)}")
        needed = [prediction.metric] + (["contains_target"] if prediction.part else [])
        for cell in cells:
            recorded = set().union(*(set(m) for m in by_cell[cell].values()))
            absent = [m for m in needed if m not in recorded]
            if absent:
                raise ConfigError(f"{where}no run of cell {cell!r} records {absent} (prediction {index}, "
                                  f"{prediction.text!r}); recorded: {sorted(recorded)}")


def observe(prediction: Prediction, by_cell: dict[str, dict[int, dict]], seeds: list[int]) -> dict:
    """The prediction's quantity over those of ``seeds`` where its cells have the metric.

    ``by_cell``: cell → seed → metrics (``analysis.factorial.load``). Returns ``{"seeds", "value", "interval"
    (t_interval or None), "status"}``; ``value`` None with status "not run" when no seed has the cells, and
    "not held (no positive Δ to split)" for a termination share of a Δ ≤ 0."""
    cells = [prediction.cell] + ([prediction.base] if prediction.base else [])
    have = [s for s in complete_seeds(by_cell, cells, prediction.metric) if s in set(seeds)]
    if prediction.part:  # the split needs contains_target in every paired run
        have = [s for s in have if s in set(complete_seeds(by_cell, cells, "contains_target"))]
    if not have:
        return {"seeds": [], "value": None, "interval": None, "status": "not run"}
    values = np.array([by_cell[prediction.cell][s][prediction.metric] for s in have], dtype=float)
    if prediction.base:
        values = values - np.array([by_cell[prediction.base][s][prediction.metric] for s in have], dtype=float)
    if prediction.part:
        if values.mean() <= 0:
            return {"seeds": have, "value": None, "interval": None, "status": "not held (no positive Δ to split)"}
        termination = split_effect(by_cell, prediction.base, prediction.cell, have)["termination"]
        value, interval = termination["mean"] / float(values.mean()), None
    else:
        interval = t_interval(values) if len(values) > 1 else None
        value = float(values.mean())
    if not prediction.contains(value):
        status = "not held"
    elif not prediction.part and interval is None:  # one seed: no interval to hold
        status = "held by the mean (no interval: 1 seed)"
    elif interval is None or (prediction.contains(interval["ci_low"]) and prediction.contains(interval["ci_high"])):
        status = "held"
    else:
        status = "held by the mean (the interval crosses a bound)"
    return {"seeds": have, "value": value, "interval": interval, "status": status}


def check(predictions: list[Prediction] | tuple[Prediction, ...], by_cell: dict[str, dict[int, dict]],
          seeds: list[int]) -> list[tuple[Prediction, dict]]:
    """``(prediction, observe(...))`` for each prediction, in order."""
    return [(p, observe(p, by_cell, seeds)) for p in predictions]


def render_checks(checked: list[tuple[Prediction, dict]], interim: bool = False) -> list[str]:
    """A Markdown table of ``check``'s result, values to two decimals (so that none is shown rounded onto a
    bound it missed); with ``interim`` each status reads "so far: …"."""
    out = ["| pre-registered prediction | quantity | predicted | observed (mean, 95 % t-interval) | seeds | status |",
           "|---|---|---|---|---|---|"]
    for prediction, seen in checked:
        sign = "+" if prediction.base and not prediction.part else ""  # a difference is signed
        if seen["value"] is None:
            observed = "–"
        elif seen["interval"] is None:
            observed = f"{seen['value']:{sign}.2f}"
        else:
            t = seen["interval"]
            observed = f"{t['mean']:{sign}.2f} [{t['ci_low']:{sign}.2f}, {t['ci_high']:{sign}.2f}]"
        status = ("so far: " if interim and seen["seeds"] else "") + seen["status"]
        out.append(f"| {prediction.text} | {prediction.quantity()} | {prediction.range()} | {observed} | "
                   f"{len(seen['seeds'])} | {status} |")
    return out


def section(predictions: list[Prediction], by_cell: dict[str, dict[int, dict]], seeds: list[int],
            source: str, provenance: str = "") -> list[str]:
    """The report section "Pre-registered predictions": where they come from (``source``, and ``provenance``:
    whether they were written first), ``RULE`` and the table of ``check`` over ``seeds``."""
    return (["", "## Pre-registered predictions", "", f"From `{source}`. {provenance}".rstrip(), "", RULE, ""]
            + render_checks(check(predictions, by_cell, seeds)))


def paired_effects(by_cell: dict[str, dict[int, dict]], pairs: list[tuple[str, str]], seeds: list[int],
                   metrics: tuple[str, ...] = ("exact_match", "contains_target", "stopped")) -> list[dict]:
    """Seed-paired cell − base for each ``(cell, base)`` of ``pairs``, over those of ``seeds`` where both
    have every metric: ``{"cell", "base", "seeds", metric: t_interval of the differences, ...}``, and for
    exact match with ``contains_target`` its ``content`` and ``termination`` parts (``stats.interaction.split_effect``). A pair
    with no such seed has ``seeds`` [] and no metrics."""
    out = []
    for cell, base in pairs:
        common = set(seeds)
        for metric in metrics:
            common &= set(complete_seeds(by_cell, [cell, base], metric))
        have = sorted(common)
        row = {"cell": cell, "base": base, "seeds": have}
        if have:
            for metric in metrics:
                row[metric] = t_interval([by_cell[cell][s][metric] - by_cell[base][s][metric] for s in have])
            if "exact_match" in metrics and "contains_target" in metrics:
                row.update(split_effect(by_cell, base, cell, have))
        out.append(row)
    return out


def render_paired_effects(effects: list[dict]) -> list[str]:
    """A Markdown table of ``paired_effects`` (pp: mean, 95 % t-interval, two-sided one-sample t-test p)."""
    keys = [k for k in ("exact_match", "content", "termination", "contains_target", "stopped")
            if any(k in e for e in effects)]
    names = {"exact_match": "Δ exact", "content": "content part", "termination": "termination part",
             "contains_target": "Δ contains", "stopped": "Δ stopped"}
    out = ["| comparison | seeds | " + " | ".join(names[k] for k in keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for e in effects:
        cells = [format_interval(e[k]) if k in e else "–" for k in keys]
        out.append(f"| `{e['cell']}` − `{e['base']}` | {len(e['seeds'])} | " + " | ".join(cells) + " |")
    return out
