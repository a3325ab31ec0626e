"""Write the dispute's report from its records: ``report.md``, ``interaction.png``, ``endings.png``, the generated answer in
this folder's README, in the project README and in ``docs/measured.md`` (between ``<!-- dispute-answer -->`` markers), and the progress
line in this folder's README (between ``<!-- dispute-progress -->`` markers). ``queue.sh`` runs it before each
commit of new rows, so a committed store and its report always agree.

    python docs/results/dispute-nlrx/report.py           # write
    python docs/results/dispute-nlrx/report.py --check   # exit 1 if anything committed differs (tests run it)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

from lmjepa.analysis.cost import render_cost
from lmjepa.analysis.endings import ending_shares, plot_endings, render_endings
from lmjepa.analysis.factorial import (Design, Reference, analyse, answer, discussion, load, plot, progress, render,
                                        run_predictions)
from lmjepa.analysis.origin import render_origin
from lmjepa.analysis.predictions import RULE, Prediction, check, paired_effects, render_checks, render_paired_effects
from lmjepa.stats.interaction import format_interval
from lmjepa.stats.paired import format_p

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
COMMAND = "python docs/results/dispute-nlrx/report.py"
DESIGN = Design(base_a="ntp", treated_a="llm-jepa", base_b="ntp-official", treated_b="llm-jepa-official")
MARK = re.compile(r"(<!-- dispute-answer -->\n).*?(<!-- /dispute-answer -->)", re.S)
PROGRESS = re.compile(r"(<!-- dispute-progress -->\n).*?(<!-- /dispute-progress -->)", re.S)
SPEC = ROOT / "configs" / "dispute-nlrx.yaml"
# Earlier reports of LLM-JEPA − NTP on NL-RX-SYNTH exact match (../shared/RESOURCES.md; PREREGISTRATION.md).
REFERENCES = (
    Reference("the paper", 14.17, "Llama-3.2-1B-Instruct, official code, 57.29 → 71.46 %"),
    Reference("a replication of the official code", 18.3, "Llama-3.2-1B-Instruct, 53.52 → 71.77 %, paired over 5 "
              "seeds; both arms contain the target ≈ 85 % of the time"),
    Reference("the JEPA audit", 0.52, "its own harness, p = 0.28"),
)
SCOPE = "SmolLM2-135M-Instruct, 280 steps of 8 rows, fp32 on CPU, 500 test rows"
FIFTH = "ntp-official-eot"
# PREREGISTRATION.md, "Predictions", each claim as worded there (one row per quantity), kept whatever happens.
PREDICTIONS = (
    Prediction("`ntp`: 60–72 % exact", "ntp", low=60, high=72),
    Prediction("`llm-jepa` − `ntp`: within ±3 pp", "llm-jepa", base="ntp", low=-3, high=3),
    Prediction("`ntp-official`: ≤ 2 % exact", "ntp-official", high=2),
    Prediction("`ntp-official`: stopped ≤ 20 %", "ntp-official", metric="stopped", high=20),
    Prediction("`ntp-official`: contains ≥ 50 %", "ntp-official", metric="contains_target", low=50),
    Prediction("`llm-jepa-official` − `ntp-official`: positive, +2 to +20 pp exact", "llm-jepa-official",
               base="ntp-official", low=2, high=20),
    Prediction("… more than half of it carried by termination", "llm-jepa-official", base="ntp-official",
               part="termination", low=0.5, strict=True),
    Prediction(f"`{FIFTH}` (if run): stops in > 90 % of rows", FIFTH, metric="stopped", low=90, strict=True),
    Prediction(f"`{FIFTH}` (if run): reaches ≥ the exact match of `llm-jepa-official`", FIFTH,
               base="llm-jepa-official", low=0),
)
JUDGING = ("The pre-registration fixed these predictions before the first row but not how each is judged. The "
           "rule used here was written on 2026-12-07, at n = 3 of 8, after the interim results had been seen "
           f"(`PREREGISTRATION.md`, Deviations). {RULE}")
EXPLORATORY = ("Added on 2026-12-07, at n = 3 of 8, after the interim results had been seen; no verdict rests on "
               "it. Each generation is put in one class by how it ends relative to its target "
               "(`evaluation.diagnostics.ending`: stripped strings, substring rule), in percent of a run's rows; "
               "the last two columns are seed-paired differences with 95 % t-intervals, uncorrected.")
COST = ("Added on 2026-12-07, at n = 5 of 8; every run of the store counts, complete seed block or not. Some "
        "runs were paused or shared the cores for minutes (listed in the README), which moves those runs' wall "
        "times; CPU seconds, which a pause does not move, are recorded from `llm-jepa` seed 11 on.")
ORIGIN = ("Added on 2026-12-07, at n = 7 of 8. What was checked across the commits (from bbe265e the refactored "
          "code trains bit for bit as before on a reduced quickstart) is in the README.")
STEPS = ("Added on 2026-12-08, after the fifth cell's first seed had been seen; no verdict rests on it. For NTP the "
         "official conditions differ from lmjepa's in two settings only: `data.train_prompt` (the prompt tokens are "
         "trained too) and `data.train_eos: false` (every end-of-turn token is ignored). The fifth cell sets the "
         "first and not the second, so it splits `ntp-official` − `ntp` into two steps: training the prompt tokens "
         "(`ntp-official-eot` − `ntp`), then ignoring the end-of-turn token (`ntp-official` − `ntp-official-eot`). "
         "All three rows use the same seeds, so the first two rows' mean differences sum to the third's.")
LINK = {HERE / "README.md": "report.md", ROOT / "README.md": "docs/results/dispute-nlrx/report.md",
        ROOT / "docs" / "measured.md": "results/dispute-nlrx/report.md"}


class Made(NamedTuple):
    """What ``generated`` makes: the report text, the answer's lines, the analysis and the ending shares
    (``analysis.endings.ending_shares``, None when no run has its predictions); all but ``lines`` are None
    before 2 complete seed blocks."""
    report: str | None
    lines: list[str]
    result: dict | None
    shares: dict | None


def generated(folder: Path = HERE / "runs") -> Made:
    """The report and the answer from the records in ``folder`` as they are now (``folder/results.jsonl`` and
    each run's ``predictions.jsonl``), read once."""
    store = folder / "results.jsonl"
    try:
        result = analyse(DESIGN, folder) if store.is_file() else None
    except ValueError:  # fewer than 2 complete seed blocks
        result = None
    if result is None:
        return Made(None, ["No result yet: fewer than 2 complete seed blocks of the pre-registered 2 × 2 are in "
                           "(`docs/results/dispute-nlrx/runs/results.jsonl`)."], None, None)
    by_cell, rows = load(store)
    runs = run_predictions(DESIGN, folder, rows, result["seeds"])
    interim = len(result["seeds"]) < DESIGN.planned_seeds
    fifth = paired_effects(by_cell, [(FIFTH, "ntp-official"), (FIFTH, "llm-jepa-official")], result["seeds"])
    sections = ["", "## The pre-registered predictions", "", JUDGING, ""]
    sections += render_checks(check(PREDICTIONS, by_cell, result["seeds"]), interim=interim)
    sections += ["", f"## The fifth cell: `{FIFTH}` (the official conditions with the end-of-turn token trained)", ""]
    if any(e["seeds"] for e in fifth):
        sections += ["Secondary analysis 5: seed-paired differences over the complete seed blocks that have the "
                     "fifth cell (mean, 95 % t-interval, two-sided one-sample t-test).", ""]
        sections += render_paired_effects(fifth) + official_steps(by_cell, fifth[0]["seeds"])
    else:
        sections.append(f"Not run yet: `{FIFTH}` runs only after all {DESIGN.planned_seeds} seed blocks of the four "
                        "cells are in, as pre-registered.")
    shares = ending_shares(runs) if runs else None
    if shares:
        sections += ["", "## Exploratory, not pre-registered: how the generations end", "", EXPLORATORY, ""]
        sections += render_endings(DESIGN, shares, result["seeds"])
        sections += ["", "![How the generations end, per cell](endings.png)"]
    sections += render_cost(rows, DESIGN.base_a, "Exploratory, not pre-registered: what each cell cost", COST)
    sections += render_origin(rows, "What made the records", ORIGIN) + ["", same_machine(rows)]
    sections += ["", "## What this says about the earlier reports", ""] + discussion(DESIGN, result, REFERENCES, SCOPE)
    sections += scale_reading(result) + fifth_reading(fifth, by_cell, check(PREDICTIONS[-2:], by_cell,
                                                                            result["seeds"]))
    report = render(DESIGN, result, COMMAND) + "\n".join(sections) + "\n"
    return Made(report, answer(DESIGN, result) + scale_line(result) + fifth_line(fifth), result, shares)


def official_steps(by_cell: dict, seeds: list[int]) -> list[str]:
    """The exploratory table (``STEPS``) that splits what the official conditions cost NTP into training the
    prompt tokens and ignoring the end-of-turn token, over ``seeds`` (those that have the fifth cell), with one
    generated sentence; nothing when ``seeds`` is empty."""
    if not seeds:
        return []
    prompt, eot, total = paired_effects(by_cell, [(FIFTH, DESIGN.base_a), (DESIGN.base_b, FIFTH),
                                                  (DESIGN.base_b, DESIGN.base_a)], seeds)
    n = len(total["seeds"])
    return (["", "### Exploratory, not pre-registered: what the official conditions cost NTP, in two steps", "", STEPS,
             ""] + render_paired_effects([prompt, eot, total]) +
            ["", f"Over {n} seed{'s' if n != 1 else ''}, the official conditions move NTP's exact match "
                 f"{format_interval(total['exact_match'])}: training the prompt tokens "
                 f"{format_interval(prompt['exact_match'])}, then ignoring the end-of-turn token "
                 f"{format_interval(eot['exact_match'])} (of which termination "
                 f"{format_interval(eot['termination'])})."])


def _odds(row: dict | None) -> str | None:
    """The row-level model's interaction as an odds ratio, or None when the model is not the logistic one."""
    if not row or row["unit"] != "odds ratio":
        return None
    return f"{row['estimate']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}], p = {format_p(row['p'])}"


def scale_reading(result: dict) -> list[str]:
    """The discussion's paragraph on the secondary analyses that read the 2 × 2 on other scales (exploratory, no
    part of the verdict; only once the verdict is drawn): the row-level model's interaction on the odds scale
    beside the pre-registered additive one, and what LLM-JEPA does to stopping under official conditions."""
    if DESIGN.verdict(result).startswith("interim"):
        return []
    mean = {c: result["cells"][c]["mean"] for c in DESIGN.cells}
    a, b, row = result["effect_a"], result["effect_b"], result.get("row_level")
    text = ("Exploratory, added on 2026-12-08 after the verdict had been seen (`PREREGISTRATION.md`, Deviations); "
            "no verdict rests on it. ")
    odds = _odds(row)
    if odds:
        larger = row["ci_low"] > 1
        text += (f"On the odds scale the row-level model finds an interaction odds ratio of {odds}, where the "
                 f"pre-registered additive test finds {format_interval(result['interaction'])}. "
                 + ("Both can hold: LLM-JEPA's " if larger else "LLM-JEPA's ")
                 + f"{b['mean']:+.1f} pp under official conditions lands on a floor of {mean[DESIGN.base_b]:.1f} % "
                 f"exact, its {a['mean']:+.1f} pp under lmjepa conditions on {mean[DESIGN.base_a]:.1f} %"
                 + (", so in relative terms it does much more under official conditions, and in absolute terms no "
                    "more. " if larger else ". "))
    secondary = result["secondary"]
    if "p_end_of_turn" in secondary and "end_of_turn_greedy" in secondary:
        eot, greedy = secondary["p_end_of_turn"], secondary["end_of_turn_greedy"]
        shown = eot["effect_b"]["ci_low"] > 0 and eot["interaction"]["ci_low"] > 0
        text += (f"Under official conditions LLM-JEPA moves the teacher-forced p(end-of-turn) right after the gold "
                 f"answer by {format_interval(eot['effect_b'], '', 3)} (interaction "
                 f"{format_interval(eot['interaction'], '', 3)}) and the share of rows where the end-of-turn token is "
                 f"the greedy next token by "
                 f"{format_interval(greedy['effect_b'])}, while whether the answer contains the target moves "
                 f"{format_interval(secondary['contains_target']['effect_b'])}"
                 + (": what it changes there is stopping, not content, and too little to lift exact match off the "
                    "floor." if shown else "."))
    return ["", text]


def scale_line(result: dict) -> list[str]:
    """The answer's line on the other scales (``scale_reading``), once the verdict is drawn."""
    odds, secondary = _odds(result.get("row_level")), result["secondary"]
    if DESIGN.verdict(result).startswith("interim") or not odds or "p_end_of_turn" not in secondary:
        return []
    return [f"Secondary (exploratory): the row-level interaction odds ratio is {odds} (a floor of "
            f"{result['cells'][DESIGN.base_b]['mean']:.1f} % exact), and under official conditions LLM-JEPA raises "
            f"p(end-of-turn) after the gold answer by "
            f"{format_interval(secondary['p_end_of_turn']['effect_b'], '', 3)}."]


def fifth_reading(fifth: list[dict], by_cell: dict, checked: list) -> list[str]:
    """The discussion's paragraph on the fifth cell (secondary analysis 5, no part of the verdict), once it has
    complete seed blocks: its own means, its two seed-paired effects, the two pre-registered predictions' status
    (``checked``: ``check`` of them), and what the effects say about where the official conditions' loss lies."""
    versus_base, versus_jepa = fifth
    seeds = versus_base["seeds"]
    if not seeds:
        return []
    n, planned = len(seeds), DESIGN.planned_seeds
    mean = {m: sum(by_cell[FIFTH][s][m] for s in seeds) / n for m in ("exact_match", "stopped")}
    so_far = "so far: " if n < planned else ""
    status = "; ".join(f"{prediction.text.split(': ', 1)[1]}: {so_far}{seen['status']}" for prediction, seen in checked)
    text = (f"The fifth cell (`{FIFTH}`, {n} of {planned} seed{'s' if planned != 1 else ''}; secondary analysis 5, no "
            f"part of the verdict): with the end-of-turn token trained and every other official condition kept, "
            f"NTP stops in {mean['stopped']:.1f} % of rows and is {mean['exact_match']:.1f} % exact. Against "
            f"`ntp-official` exact match moves {format_interval(versus_base['exact_match'])}, against "
            f"`llm-jepa-official` {format_interval(versus_jepa['exact_match'])}; against `ntp-official` its "
            f"termination part is {format_interval(versus_base['termination'])} and its content part "
            f"{format_interval(versus_base['content'])}. The pre-registered predictions on it: {status}.")
    effect = versus_jepa["exact_match"]
    if n < planned:
        text += f" Interim: read it once all {planned} seeds are in."
    elif effect["ci_low"] > 0:
        text += (" Training that one token gains more exact match than adding LLM-JEPA under the same conditions: "
                 "here LLM-JEPA's gain under official conditions is smaller than what the official collator's "
                 "masking of the end-of-turn token costs.")
    elif effect["ci_high"] < 0:
        text += (" LLM-JEPA under official conditions is more exact than training the end-of-turn token: its gain "
                 "there is not only the termination that token restores.")
    else:
        text += (" The interval against `llm-jepa-official` includes zero: this design cannot tell training the "
                 "end-of-turn token from adding LLM-JEPA under official conditions.")
    return ["", text]


def same_machine(rows: list[dict]) -> str:
    """Whether each simple effect compares runs made on one machine: per seed, the LLM-JEPA run and its NTP run
    under the same conditions, by the environment each row records (``analysis.origin``)."""
    environment = {(r["cell"], r["seed"]): (r.get("metrics") or {}).get("environment") for r in rows}
    counts = {"same": 0, "different": 0, "unknown": 0}
    for base, treated in ((DESIGN.base_a, DESIGN.treated_a), (DESIGN.base_b, DESIGN.treated_b)):
        for cell, seed in environment:
            if cell != treated or (base, seed) not in environment:
                continue
            pair = environment[(base, seed)], environment[(treated, seed)]
            counts["unknown" if None in pair else "same" if pair[0] == pair[1] else "different"] += 1
    return (f"Of the {sum(counts.values())} seed-paired LLM-JEPA − NTP comparisons (each under one set of conditions), "
            f"{counts['same']} compare runs made in the same environment, {counts['different']} in different ones, "
            f"and in {counts['unknown']} at least one run records none.")


def fifth_line(fifth: list[dict]) -> list[str]:
    """The answer's line on the fifth cell (secondary analysis 5), once it has complete seed blocks."""
    if not fifth[0]["seeds"]:
        return []
    versus = " and ".join(f"{format_interval(e['exact_match'])} vs `{e['base']}`" for e in fifth if e["seeds"])
    n = len(fifth[0]["seeds"])
    return [f"With the end-of-turn token trained under official conditions (`{FIFTH}`, {n} "
            f"seed{'s' if n != 1 else ''}), exact match moves {versus}."]


def progress_line() -> str:
    """The README's progress line, from the store and the spec's seeds and cells."""
    spec = yaml.safe_load(SPEC.read_text())
    store = HERE / "runs" / "results.jsonl"
    rows = load(store)[1] if store.is_file() else []
    extra = tuple(c for c in spec["cells"] if c not in DESIGN.cells)
    return f"Progress (generated from `runs/results.jsonl`): {progress(DESIGN, rows, spec['seeds'], extra)}"


def main(check: bool = False) -> int:
    made = generated()
    report, lines = made.report, made.lines
    differs = []
    if report is not None:
        if check:
            old = (HERE / "report.md").read_text() if (HERE / "report.md").is_file() else None
            differs += [] if old == report else ["report.md"]
        else:
            (HERE / "report.md").write_text(report)
            plot(DESIGN, made.result, HERE / "interaction.png")
            if made.shares:
                plot_endings(DESIGN, made.shares, made.result["seeds"], HERE / "endings.png")
    for readme, link in LINK.items():
        text = readme.read_text()
        block = "\n".join(lines) + (f" [Report]({link})." if report is not None else "") + "\n"
        new = MARK.sub(lambda m: m.group(1) + block + m.group(2), text)
        if readme == HERE / "README.md":
            if not PROGRESS.search(text):
                differs.append(f"{readme.relative_to(ROOT)}: no <!-- dispute-progress --> block")
            new = PROGRESS.sub(lambda m: m.group(1) + progress_line() + "\n" + m.group(2), new)
        if new == text and not MARK.search(text):
            differs.append(f"{readme.relative_to(ROOT)}: no <!-- dispute-answer --> block")
        elif new != text:
            if check:
                differs.append(str(readme.relative_to(ROOT)))
            else:
                readme.write_text(new)
    if differs:
        print(("differs from the records: " if check else "") + ", ".join(differs))
    return 1 if differs and check else 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))
