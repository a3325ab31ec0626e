"""A 2 × 2 report from a sweep's records: objective {base, treated} × conditions {A, B} (issue 33).

Reads a results store (``results.jsonl``) and, beside it, each run's ``predictions.jsonl``
(``<cell>/seed-<seed>-<hash>/``), and writes a Markdown report and an interaction plot. Every number in a
sentence is formatted here from the records (``stats.interaction``), never typed by hand; the verdict follows
the rules fixed in advance (``Design.verdict``).

    from lmjepa.analysis.factorial import Design, analyse, render
    design = Design(base_a="ntp", treated_a="llm-jepa", base_b="ntp-official", treated_b="llm-jepa-official")
    result = analyse(design, "docs/results/dispute-nlrx/runs")
    print(render(design, result))
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from ..stats.compare import load_results, runs_by_cell
from ..stats.interaction import format_interval, interaction, row_level_model
from ..stats.paired import format_p, minimum_detectable_effect

METRICS = ("exact_match", "contains_target", "stopped", "exact_if_truncated", "p_end_of_turn", "end_of_turn_greedy",
           "mean_extra_tokens")
LABELS = {"exact_match": "exact %", "contains_target": "contains %", "stopped": "stopped %",
          "exact_if_truncated": "exact if truncated %", "p_end_of_turn": "p(end-of-turn)",
          "end_of_turn_greedy": "end-of-turn greedy %", "mean_extra_tokens": "extra tokens"}


@dataclass(frozen=True)
class Design:
    """The four cells, the names of the two conditions, the planned seeds and the verdict's threshold
    ``absent_below`` (pp): the effect under B counts as absent when its t-interval ends below it.
    ``verdicts``: state the dispute's pre-registered verdict (docs/results/dispute-nlrx/PREREGISTRATION.md);
    False for a plain 2 × 2 report of any store (``lmjepa compare --interaction``)."""

    base_a: str
    treated_a: str
    base_b: str
    treated_b: str
    conditions: tuple[str, str] = ("lmjepa", "official")
    objectives: tuple[str, str] = ("NTP", "LLM-JEPA")
    planned_seeds: int = 8
    alpha: float = 0.05
    absent_below: float = 5.0
    verdicts: bool = True

    @property
    def cells(self) -> list[str]:
        return [self.base_a, self.treated_a, self.base_b, self.treated_b]

    def verdict(self, result: dict) -> str:
        """The pre-registered verdict (docs/results/dispute-nlrx/PREREGISTRATION.md), or ``interim`` while
        fewer than ``planned_seeds`` complete blocks exist."""
        n = len(result["seeds"])
        if n < self.planned_seeds:
            return f"interim (n = {n} of {self.planned_seeds}): no verdict yet"
        effect, inter = result["effect_b"], result["interaction"]
        if effect["mean"] > 0 and effect["p"] < self.alpha and inter["mean"] > 0 and inter["p"] < self.alpha:
            parts = (effect.get("termination"), effect.get("content"))
            if parts[0] and parts[0]["ci_low"] > 0 and parts[0]["mean"] > parts[1]["mean"]:
                return "positive side reproduced, carried by termination"
            return "positive side reproduced, not shown to be carried by termination"
        if effect["ci_high"] < self.absent_below:
            return "absent"
        return "inconclusive at this n"


def load(store: str | Path) -> tuple[dict, list[dict]]:
    """(cell → seed → metrics, the rows) of a results store. Raises DataError naming the file (and line) if
    it is missing or malformed (``stats.compare.load_results``)."""
    rows = load_results(store)
    by_cell, _ = runs_by_cell(rows, list(METRICS))
    return by_cell, rows


def run_predictions(design: Design, folder: str | Path, rows: list[dict],
                    seeds: list[int]) -> list[tuple[dict, list[dict]]] | None:
    """(row, its predictions) for each run of the four cells at ``seeds``, read from
    ``folder/<cell>/seed-<seed>-<config_hash>/predictions.jsonl``; None if any of those files is missing."""
    runs = []
    for row in rows:
        if row["cell"] not in design.cells or row["seed"] not in seeds:
            continue
        path = Path(folder) / row["cell"] / f"seed-{row['seed']}-{row['config_hash']}" / "predictions.jsonl"
        if not path.is_file():
            return None
        runs.append((row, [json.loads(line) for line in path.read_text().splitlines() if line.strip()]))
    return runs


def prediction_frame(design: Design, runs: list[tuple[dict, list[dict]]]):
    """Rows × seeds of the four cells as a DataFrame (``exact``, ``treated``, ``b``, ``row``, ``seed``) from
    ``run_predictions``."""
    import pandas as pd

    records = []
    for row, predictions in runs:
        treated = int(row["cell"] in (design.treated_a, design.treated_b))
        b = int(row["cell"] in (design.base_b, design.treated_b))
        records += [{"exact": int(str(p["exact_match"]) == "True"), "treated": treated, "b": b, "row": index,
                     "seed": row["seed"]} for index, p in enumerate(predictions)]
    return pd.DataFrame(records)


def official_rescoring(design: Design, runs: list[tuple[dict, list[dict]]]) -> dict | None:
    """Exact match recomputed from the stored strings by the official ``evaluate.py`` rule (the decoded answer,
    stripped, equal to the stripped gold regex), independently of the recorded ``exact_match``.

    Returns ``{"agree": rows where both scorings agree, "rows": rows scored, "interaction": the seed-paired
    2 × 2 on the rescored exact match (in percent)}``; None if a prediction lacks ``prediction`` or
    ``reference``. Secondary analysis 4 of docs/results/dispute-nlrx/PREREGISTRATION.md."""
    by_cell: dict[str, dict[int, dict]] = {}
    agree = total = 0
    for row, predictions in runs:
        if not predictions or any("prediction" not in p or "reference" not in p for p in predictions):
            return None
        hits = [str(p["prediction"]).strip() == str(p["reference"]).strip() for p in predictions]
        agree += sum(hit == (str(p["exact_match"]) == "True") for hit, p in zip(hits, predictions))
        total += len(hits)
        by_cell.setdefault(row["cell"], {})[row["seed"]] = {"exact_match": 100.0 * sum(hits) / len(hits)}
    return {"agree": agree, "rows": total, "interaction": interaction(by_cell, *design.cells)}


def analyse(design: Design, folder: str | Path) -> dict:
    """The 2 × 2 of ``folder/results.jsonl``: per-cell means, the interaction on exact match and on the
    secondary metrics, and the row-level model. Raises ValueError with < 2 complete seed blocks."""
    by_cell, rows = load(Path(folder) / "results.jsonl")
    result = interaction(by_cell, *design.cells, metric="exact_match")
    seeds = result["seeds"]
    result["table"] = {cell: {metric: [by_cell[cell][s].get(metric) for s in seeds] for metric in METRICS}
                       for cell in design.cells}
    result["secondary"] = {}
    for metric in METRICS[1:]:
        try:
            result["secondary"][metric] = interaction(by_cell, *design.cells, metric=metric)
        except ValueError:
            continue
    runs = run_predictions(design, folder, rows, seeds)
    frame = prediction_frame(design, runs) if runs else None
    result["row_level"] = row_level_model(frame) if frame is not None and len(frame) else None
    result["official_rescoring"] = official_rescoring(design, runs) if runs else None
    result["other_cells"] = sorted(set(by_cell) - set(design.cells))
    return result


def _mean_sd(values: list) -> str:
    import numpy as np

    values = [v for v in values if v is not None]
    if not values:
        return "–"
    x = np.asarray(values, dtype=float)
    digits = 3 if abs(x).max() <= 1 else 1
    return f"{x.mean():.{digits}f} ± {x.std(ddof=1):.{digits}f}" if len(x) > 1 else f"{x.mean():.{digits}f}"


def answer(design: Design, result: dict) -> list[str]:
    """The ≤ 5 generated lines that state the result (the README's answer and the report's summary)."""
    a, b, inter = result["effect_a"], result["effect_b"], result["interaction"]
    n = len(result["seeds"])
    effect = f"{design.objectives[1]} − {design.objectives[0]} on exact match, {n} seeds"
    verdict = design.verdict(result)
    if verdict == "absent":  # what the pre-registered word means, beside an interval that may lie above zero
        verdict += (f" (a gain of +{design.absent_below:g} pp or more is excluded under {design.conditions[1]} "
                    "conditions)")
    lines = [(f"**{verdict}.** {effect}" if design.verdicts else f"**{effect}**")
             + " (mean, 95 % t-interval, two-sided p):",
             f"under {design.conditions[1]} conditions {format_interval(b)}; under {design.conditions[0]} conditions "
             f"{format_interval(a)}; interaction {format_interval(inter)}."]
    if "termination" in b:
        lines.append(f"Under {design.conditions[1]} conditions the effect splits into termination "
                     f"{format_interval(b['termination'])} and content {format_interval(b['content'])}.")
    return lines


@dataclass(frozen=True)
class Reference:
    """An earlier report of the treated − base effect on exact match: who, Δ in pp, and how it was measured."""

    who: str
    delta: float
    how: str


def progress(design: Design, rows: list[dict], seeds: list[int], extra_cells: tuple[str, ...] = ()) -> str:
    """One generated line: how many of the planned runs (``design.cells`` × ``seeds``) are in ``rows``,
    which seed blocks are complete, which partial, which not started, and each of ``extra_cells``' count."""
    have = {(r["cell"], r["seed"]) for r in rows}
    done = [s for s in seeds if all((c, s) in have for c in design.cells)]
    partial = {s: [c for c in design.cells if (c, s) in have] for s in seeds if s not in done}
    started = {s: cells for s, cells in partial.items() if cells}
    waiting = [s for s in seeds if s not in done and s not in started]
    n_in = sum((c, s) in have for c in design.cells for s in seeds)
    line = (f"{n_in} of {len(design.cells) * len(seeds)} runs of the four cells are in; complete seed blocks: "
            f"{', '.join(map(str, done)) or 'none'} ({len(done)} of {len(seeds)})")
    line += "".join(f"; seed {s} partial ({', '.join(f'`{c}`' for c in cells)})" for s, cells in started.items())
    line += f"; not started: {', '.join(map(str, waiting))}" if waiting else ""
    for cell in extra_cells:
        line += f"; `{cell}`: {sum((cell, s) in have for s in seeds)} of {len(seeds)}"
    return line + "."


def discussion(design: Design, result: dict, references: tuple[Reference, ...], scope: str) -> list[str]:
    """The report's paragraph on what the result says about ``references`` (earlier reports), generated from
    the verdict (``Design.verdict``) and the records. ``scope``: the setting, e.g. the model and schedule. While
    interim it gives the references and the current effects only, and withholds any reading."""
    a, b, n = result["effect_a"], result["effect_b"], len(result["seeds"])
    mean = {c: result["cells"][c]["mean"] for c in design.cells}
    (cond_a, cond_b), (base, treated) = design.conditions, design.objectives
    earlier = "; ".join(f"{r.who} {round(r.delta, 2):+g} pp ({r.how})" for r in references)
    here = (f"Here ({scope}), {treated} − {base} on exact match is {format_interval(b)} under {cond_b} conditions "
            f"(`{design.base_b}` {mean[design.base_b]:.1f} %, `{design.treated_b}` {mean[design.treated_b]:.1f} %) "
            f"and {format_interval(a)} under {cond_a} conditions (`{design.base_a}` {mean[design.base_a]:.1f} %, "
            f"`{design.treated_a}` {mean[design.treated_a]:.1f} %).")
    contains = {c: [v for v in result["table"][c]["contains_target"] if v is not None] for c in design.cells}
    if all(contains[c] for c in (design.base_b, design.treated_b)):
        here += (f" Under {cond_b} conditions they contain the target in {fmean(contains[design.base_b]):.1f} % and "
                 f"{fmean(contains[design.treated_b]):.1f} % of rows.")
    lines = [f"Earlier reports of {treated} − {base}: {earlier}.", here]
    verdict = design.verdict(result)
    parts = (f"termination part {format_interval(b['termination'])}, content part {format_interval(b['content'])}"
             if "termination" in b else "no content / termination split (contains not recorded)")
    if verdict.startswith("interim"):
        lines.append(f"Interim: the pre-registration withholds any reading until all {design.planned_seeds} seed "
                     "blocks are in.")
    elif verdict.startswith("positive"):
        lines.append(f"The positive side is reproduced: the gain appears under {cond_b} conditions and the "
                     f"interaction ({format_interval(result['interaction'])}) says it depends on them, so the earlier "
                     f"reports can all be right: a gain under {cond_b} conditions, a null under others "
                     f"({cond_a}: {format_interval(a)}). Split: {parts}; "
                     + ("termination carries it." if verdict.endswith(", carried by termination") else
                        "it is not shown to be carried by termination."))
    elif verdict == "absent":  # the size reported is absent; a small gain may still lie above zero
        smaller = (f"A smaller gain remains: the interval lies above zero, so {treated} helps a little under {cond_b} "
                   f"conditions, but the interaction ({format_interval(result['interaction'])}) does not show that "
                   "this depends on them. " if b["ci_low"] > 0 else "This agrees with a null. ")
        lines.append(f"The positive side is absent at this scale: under {cond_b} conditions the interval ends at "
                     f"{b['ci_high']:+.1f} pp, below the pre-registered +{design.absent_below:g} pp, so gains of the "
                     f"size reported above do not appear in this setting. {smaller}This does not test a larger "
                     f"model, whose stopping may survive the {cond_b} conditions ({parts}).")
    else:
        lines.append(f"Inconclusive at n = {n}: under {cond_b} conditions the interval "
                     f"[{b['ci_low']:+.1f}, {b['ci_high']:+.1f}] neither excludes zero with the interaction nor ends "
                     f"below +{design.absent_below:g} pp, so it cannot tell "
                     f"{'a null' if b['ci_low'] <= 0 else 'a small gain'} from a gain of the size reported "
                     f"above ({parts}).")
    return lines


def render(design: Design, result: dict, command: str = "", references: tuple[Reference, ...] = (),
           scope: str = "") -> str:
    """The Markdown report (table, interaction, decomposition, secondary metrics, row-level model, the official
    rescoring, and with ``references`` the ``discussion``)."""
    seeds = result["seeds"]
    out = [f"# {design.objectives[1]} vs {design.objectives[0]} × {design.conditions[0]} vs "
           f"{design.conditions[1]} conditions", ""]
    if command:
        out += [f"Generated by `{command}`; every number below is computed from the records it reads.", ""]
    out += answer(design, result) + ["", f"Seeds (complete blocks): {', '.join(map(str, seeds))}.", "",
                                     "![interaction](interaction.png)", "", "## The 2 × 2 (mean ± sd over seeds)", ""]
    shown = [m for m in METRICS if any(v is not None for c in design.cells for v in result["table"][c][m])]
    out += ["| cell | " + " | ".join(LABELS[m] for m in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    out += [f"| `{c}` | " + " | ".join(_mean_sd(result["table"][c][m]) for m in shown) + " |" for c in design.cells]
    out += ["", "## Effects on exact match (per seed: mean, 95 % t-interval, two-sided one-sample t-test)", "",
            "| effect | Δ exact | content part | termination part |", "|---|---|---|---|"]
    for name, key in ((f"{design.objectives[1]} − {design.objectives[0]}, {design.conditions[0]}", "effect_a"),
                      (f"{design.objectives[1]} − {design.objectives[0]}, {design.conditions[1]}", "effect_b")):
        effect = result[key]
        parts = [format_interval(effect[p]) if p in effect else "–" for p in ("content", "termination")]
        out.append(f"| {name} | {format_interval(effect)} | {parts[0]} | {parts[1]} |")
    out.append(f"| interaction (difference of the two) | {format_interval(result['interaction'])} | | |")
    out += ["", "The content / termination split is `lmjepa.stats.termination.split_delta` per seed (the parts sum "
            "to Δ exact), each part with its own t-interval.", "", "## Secondary metrics: the same 2 × 2", "",
            "| metric | effect, " + design.conditions[0] + " | effect, " + design.conditions[1] + " | interaction |",
            "|---|---|---|---|"]
    for metric, sec in result["secondary"].items():
        unit = "" if metric in ("p_end_of_turn", "mean_extra_tokens") else " pp"
        digits = 3 if metric == "p_end_of_turn" else 1  # a probability, not a percentage
        effects = (format_interval(sec[key], unit, digits) for key in ("effect_a", "effect_b", "interaction"))
        out.append(f"| {LABELS[metric]} | " + " | ".join(effects) + " |")
    out += _per_seed_section(design, result) + _row_level_section(design, result) + _official_section(design, result)
    if references:
        out += ["", "## What this says about the earlier reports", ""] + discussion(design, result, references, scope)
    return "\n".join(out) + "\n"


def _per_seed_section(design: Design, result: dict) -> list[str]:
    """Exact match per seed and cell with the per-seed effects and interaction, and the minimum detectable
    effect (``stats.paired.minimum_detectable_effect``, two-sided: one-sided at α / 2) given the sd seen so far,
    at ``design.planned_seeds`` for the pre-registered design (``verdicts``), else at the seeds there are."""
    seeds, exact = result["seeds"], {c: result["table"][c]["exact_match"] for c in design.cells}
    out = ["", "## Per seed (exact match %)", "",
           "| seed | " + " | ".join(f"`{c}`" for c in design.cells) + f" | effect, {design.conditions[0]} | "
           f"effect, {design.conditions[1]} | interaction |", "|---" * 8 + "|"]
    for i, seed in enumerate(seeds):
        v = [exact[c][i] for c in design.cells]
        a, b = v[1] - v[0], v[3] - v[2]
        out.append(f"| {seed} | " + " | ".join(f"{x:.1f}" for x in v) + f" | {a:+.1f} | {b:+.1f} | {b - a:+.1f} |")
    n = len(seeds)
    planned = design.planned_seeds if design.verdicts else n
    mde = {key: minimum_detectable_effect(result[key]["sd"], planned, design.alpha / 2)
           for key in ("effect_b", "interaction")}
    at = f"the planned n = {planned} seeds" if design.verdicts else f"these n = {n} seeds"
    if not all(math.isnan(m) for m in mde.values()):
        out += ["", f"Power: at {at}, with the sd of the per-seed differences seen so far "
                f"(n = {n}: {design.conditions[1]} effect {result['effect_b']['sd']:.1f} pp, interaction "
                f"{result['interaction']['sd']:.1f} pp), a two-sided t-test at α = {design.alpha:g} detects with "
                f"80 % power a true {design.conditions[1]} effect of {mde['effect_b']:.1f} pp and an interaction of "
                f"{mde['interaction']:.1f} pp; smaller effects may go unseen. The sd is itself estimated from "
                f"{n} seeds."]
    return out


def _row_level_section(design: Design, result: dict) -> list[str]:
    row = result.get("row_level")
    if row is None:
        return ["", "## Row-level model", "", "Not fitted: some run's `predictions.jsonl` is missing."]
    return ["", "## Row-level model", "",
            f"{row['model']}, exact ~ {design.objectives[1]} × {design.conditions[1]} over rows × seeds: "
            f"interaction {row['estimate']:.3f} {row['unit']} [{row['ci_low']:.3f}, {row['ci_high']:.3f}], "
            f"p = {format_p(row['p'])}." + (f" ({row['why']}.)" if row["why"] else "")]


def _official_section(design: Design, result: dict) -> list[str]:
    official, head = result.get("official_rescoring"), ["", "## Exact match by the official `evaluate.py` rule", ""]
    if official is None:
        return head + ["Not computed: some run's `predictions.jsonl` is missing or lacks the decoded strings."]
    effects = official["interaction"]
    return head + [f"Recomputed from the stored strings (the decoded answer, stripped, equal to the stripped gold "
                   f"regex): it agrees with the recorded exact match on {official['agree']:,} of "
                   f"{official['rows']:,} rows. Under it, {design.objectives[1]} − {design.objectives[0]} is "
                   f"{format_interval(effects['effect_b'])} under {design.conditions[1]} conditions, "
                   f"{format_interval(effects['effect_a'])} under {design.conditions[0]} conditions; interaction "
                   f"{format_interval(effects['interaction'])}."]


def plot(design: Design, result: dict, path: str | Path) -> None:
    """Interaction plot (PNG). Left: exact match per conditions, one line per objective (mean, 95 % t-interval).
    Right: the effect (treated − base) per seed under each condition, one grey line per seed, with the mean and
    its 95 % t-interval; the interaction is how much the two means differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for label, (a, b), marker in ((design.objectives[0], (design.base_a, design.base_b), "o"),
                                  (design.objectives[1], (design.treated_a, design.treated_b), "s")):
        means = [result["cells"][c]["mean"] for c in (a, b)]
        errors = [[m - result["cells"][c]["ci_low"] for m, c in zip(means, (a, b))],
                  [result["cells"][c]["ci_high"] - m for m, c in zip(means, (a, b))]]
        ax.errorbar([0, 1], means, yerr=errors, marker=marker, capsize=4, label=label)
    names = [f"{c} conditions" for c in design.conditions]
    ax.set_xticks([0, 1], names)
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel("exact match % (mean, 95 % t-interval)")
    ax.set_title(f"n = {len(result['seeds'])} seeds")
    ax.legend()
    exact = result["table"]
    for i, _ in enumerate(result["seeds"]):
        right.plot([0, 1], [exact[design.treated_a]["exact_match"][i] - exact[design.base_a]["exact_match"][i],
                            exact[design.treated_b]["exact_match"][i] - exact[design.base_b]["exact_match"][i]],
                   color="0.75", marker=".", zorder=1)
    for x, key in ((0, "effect_a"), (1, "effect_b")):
        t = result[key]
        right.errorbar([x], [t["mean"]], yerr=[[t["mean"] - t["ci_low"]], [t["ci_high"] - t["mean"]]], marker="D",
                       color="C3", capsize=5, zorder=2)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks([0, 1], names)
    right.set_xlim(-0.3, 1.3)
    right.set_ylabel(f"{design.objectives[1]} − {design.objectives[0]}, exact match (pp)")
    right.set_title(f"per seed (grey), mean; interaction {result['interaction']['mean']:+.1f} pp", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
