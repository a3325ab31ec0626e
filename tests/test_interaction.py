"""stats.interaction: the seed-paired 2 × 2, against hand computations and scipy; the row-level model against
closed forms of a saturated 2 × 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import factorial_store

from lmjepa.stats.interaction import complete_seeds, interaction, row_level_model, split_effect, t_interval


def test_t_interval_is_scipy_t_interval_and_test():
    x = [3.0, -1.0, 4.5, 2.0, 0.5]
    got = t_interval(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((low, high))
    assert got["p"] == pytest.approx(stats.ttest_1samp(x, 0).pvalue) and got["n"] == 5
    flat = t_interval([2.0, 2.0, 2.0])
    assert flat["ci_low"] == flat["ci_high"] == 2.0 and math.isnan(flat["p"])
    assert math.isnan(t_interval([1.0])["ci_low"])
    with pytest.raises(ValueError):
        t_interval([])


def _cells():
    rng = np.random.default_rng(0)
    by_cell = {c: {} for c in ("n", "j", "no", "jo")}
    for s in (1, 2, 3, 4, 5):
        for c, (exact, contains) in {"n": (60, 65), "j": (61, 66), "no": (1, 60), "jo": (12, 62)}.items():
            e = exact + rng.normal(0, 2)
            by_cell[c][s] = {"exact_match": max(e, 0.0), "contains_target": contains + rng.normal(0, 1)}
    del by_cell["jo"][5]  # an incomplete block is left out
    return by_cell


def test_interaction_is_the_difference_of_differences_per_seed():
    by_cell = _cells()
    got = interaction(by_cell, "n", "j", "no", "jo")
    assert got["seeds"] == [1, 2, 3, 4] == complete_seeds(by_cell, ["n", "j", "no", "jo"], "exact_match")
    e = {c: np.array([by_cell[c][s]["exact_match"] for s in got["seeds"]]) for c in by_cell}
    expected = (e["jo"] - e["no"]) - (e["j"] - e["n"])
    assert got["interaction"]["mean"] == pytest.approx(expected.mean())
    assert got["interaction"]["p"] == pytest.approx(stats.ttest_1samp(expected, 0).pvalue)
    assert got["effect_b"]["mean"] == pytest.approx((e["jo"] - e["no"]).mean())
    for key in ("effect_a", "effect_b"):  # the parts add up to the effect, seed by seed and so in the mean
        effect = got[key]
        assert effect["content"]["mean"] + effect["termination"]["mean"] == pytest.approx(effect["mean"])
    assert got["effect_b"]["termination"]["mean"] > got["effect_b"]["content"]["mean"]  # built so: exact moved
    with pytest.raises(ValueError, match="≥ 2 seeds"):
        interaction({c: {1: v[1]} for c, v in by_cell.items()}, "n", "j", "no", "jo")


def test_split_effect_is_the_shapley_split_of_exact_as_contains_times_clean():
    by_cell = _cells()
    seeds = [1, 2, 3, 4]
    got = split_effect(by_cell, "no", "jo", seeds)
    # independently: exact = contains × clean / 100, so the symmetric (Shapley) split of the product per seed
    c0, c1 = (np.array([by_cell[c][s]["contains_target"] for s in seeds]) for c in ("no", "jo"))
    e0, e1 = (np.array([by_cell[c][s]["exact_match"] for s in seeds]) for c in ("no", "jo"))
    k0, k1 = 100 * e0 / c0, 100 * e1 / c1
    content, termination = (c1 - c0) * (k0 + k1) / 200, (k1 - k0) * (c0 + c1) / 200
    assert content + termination == pytest.approx(e1 - e0)
    assert got["content"]["mean"] == pytest.approx(content.mean())
    assert got["termination"]["p"] == pytest.approx(stats.ttest_1samp(termination, 0).pvalue)
    assert got["termination"]["n"] == 4
    with pytest.raises(ValueError, match="at least one seed"):
        split_effect(by_cell, "no", "jo", [])
    with pytest.raises(KeyError):
        split_effect(by_cell, "no", "jo", [5])  # jo has no seed 5


def _frame(p: dict, rows: int = 300, seeds: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    records = []
    for (treated, b), prob in p.items():
        for s in range(seeds):
            hits = rng.random(rows) < prob
            records += [{"exact": int(h), "treated": treated, "b": b, "row": r, "seed": s} for r, h in enumerate(hits)]
    return pd.DataFrame(records)


def test_row_level_logistic_is_the_ratio_of_odds_ratios_of_a_saturated_balanced_design():
    frame = _frame({(0, 0): 0.6, (1, 0): 0.62, (0, 1): 0.2, (1, 1): 0.45})
    got = row_level_model(frame)
    p = frame.groupby(["treated", "b"])["exact"].mean()
    odds = p / (1 - p)
    expected = (odds[1, 1] / odds[0, 1]) / (odds[1, 0] / odds[0, 0])
    assert got["unit"] == "odds ratio" and got["estimate"] == pytest.approx(expected, rel=1e-4)
    assert got["ci_low"] < got["estimate"] < got["ci_high"] and got["p"] < 0.05


def test_row_level_model_falls_back_to_the_linear_probability_model_at_the_floor():
    frame = _frame({(0, 0): 0.6, (1, 0): 0.6, (0, 1): 0.0, (1, 1): 0.1})
    got = row_level_model(frame)
    p = frame.groupby(["treated", "b"])["exact"].mean()
    assert got["unit"] == "pp" and "quasi-separation" in got["why"]
    assert got["estimate"] == pytest.approx(100 * ((p[1, 1] - p[0, 1]) - (p[1, 0] - p[0, 0])))


def test_factorial_report_states_what_the_records_give(tmp_path):
    from lmjepa.analysis.factorial import Design, analyse, answer, plot, render

    factorial_store(tmp_path)
    design = Design("ntp", "llm-jepa", "ntp-official", "llm-jepa-official", planned_seeds=8)
    result = analyse(design, tmp_path)
    by_seed = {c: [result["table"][c]["exact_match"][i] for i in range(3)] for c in design.cells}
    expected = t_interval(np.subtract(by_seed["llm-jepa-official"], by_seed["ntp-official"]))
    lines = answer(design, result)
    assert lines[0].startswith("**interim (n = 3 of 8)") and f"{expected['mean']:+.1f} pp" in lines[1]
    assert result["row_level"]["estimate"] is not None
    report = render(design, result, "cmd")
    assert "| `llm-jepa-official` |" in report and "Row-level model" in report
    plot(design, result, tmp_path / "i.png")
    assert (tmp_path / "i.png").stat().st_size > 1000


@pytest.mark.parametrize("effect, p, inter_p, ci_high, termination, verdict", [
    (10.0, 0.001, 0.01, 15.0, (4.0, 2.0), "positive side reproduced, carried by termination"),
    (10.0, 0.001, 0.01, 15.0, (-1.0, 11.0), "positive side reproduced, not shown"),
    (1.0, 0.4, 0.5, 4.0, (0.0, 1.0), "absent"),
    (4.0, 0.2, 0.3, 9.0, (2.0, 2.0), "inconclusive"),
])
def test_pre_registered_verdicts(effect, p, inter_p, ci_high, termination, verdict):
    from lmjepa.analysis.factorial import Design

    part = lambda mean, low: {"mean": mean, "ci_low": low, "ci_high": mean + 1, "p": 0.01}
    result = {"seeds": list(range(8)), "interaction": {"mean": effect, "p": inter_p},
              "effect_b": {"mean": effect, "p": p, "ci_high": ci_high,
                           "termination": part(termination[0] + 1, termination[0]), "content": part(termination[1], 0)}}
    assert Design("a", "b", "c", "d").verdict(result).startswith(verdict)


def test_official_rescoring_recomputes_exact_match_from_the_strings(tmp_path):
    from lmjepa.analysis.factorial import Design, analyse, render

    factorial_store(tmp_path, misrecorded=("ntp-official", 1))
    design = Design("ntp", "llm-jepa", "ntp-official", "llm-jepa-official")
    result = analyse(design, tmp_path)
    official = result["official_rescoring"]
    assert (official["agree"], official["rows"]) == (3 * 4 * 40 - 1, 3 * 4 * 40)
    # one exact row fewer in ntp-official seed 1 (of 40): J_off − N_off rises by 2.5 pp on that seed
    recorded = [result["table"]["llm-jepa-official"]["exact_match"][i] - result["table"]["ntp-official"]["exact_match"][i]
                for i in range(3)]
    expected = t_interval(np.add(recorded, [2.5, 0.0, 0.0]))
    assert official["interaction"]["effect_b"]["mean"] == pytest.approx(expected["mean"])
    assert official["interaction"]["effect_b"]["ci_high"] == pytest.approx(expected["ci_high"])
    assert official["interaction"]["effect_a"]["mean"] == pytest.approx(result["effect_a"]["mean"])
    assert "on 479 of 480 rows" in render(design, result)


def test_official_rescoring_needs_the_decoded_strings(tmp_path):
    from lmjepa.analysis.factorial import Design, official_rescoring

    runs = [({"cell": "ntp", "seed": 1}, [{"exact_match": True}])]
    assert official_rescoring(Design("ntp", "llm-jepa", "ntp-official", "llm-jepa-official"), runs) is None


def test_progress_line_counts_blocks_partial_seeds_and_extra_cells():
    from lmjepa.analysis.factorial import Design, progress

    design = Design("n", "j", "no", "jo")
    rows = [{"cell": c, "seed": s} for s in (5, 6) for c in design.cells] + [{"cell": "n", "seed": 7},
                                                                             {"cell": "e", "seed": 5}]
    assert progress(design, rows, [5, 6, 7, 8], ("e",)) == (
        "9 of 16 runs of the four cells are in; complete seed blocks: 5, 6 (2 of 4); seed 7 partial (`n`); "
        "not started: 8; `e`: 1 of 4.")


@pytest.mark.parametrize("planned, official, n_rows, opening", [
    (9, (0.05, 0.3), 40, "Interim: the pre-registration withholds"),
    (8, (0.05, 0.3), 40, "The positive side is reproduced"),
    (8, (0.3, 0.3), 400, "The positive side is absent at this scale: under official conditions the interval ends at"),
    (8, (0.3, 0.35), 40, "Inconclusive at n = 8"),
])
def test_discussion_follows_the_verdict_and_states_the_records(tmp_path, planned, official, n_rows, opening):
    from lmjepa.analysis.factorial import Design, Reference, analyse, answer, discussion

    factorial_store(tmp_path, seeds=range(1, 9), official=official, n_rows=n_rows)
    design = Design("ntp", "llm-jepa", "ntp-official", "llm-jepa-official", planned_seeds=planned)
    result = analyse(design, tmp_path)
    lines = discussion(design, result, (Reference("the paper", 14.17, "Llama"),), "tiny")
    effect = t_interval(np.subtract(result["table"]["llm-jepa-official"]["exact_match"],
                                    result["table"]["ntp-official"]["exact_match"]))
    assert lines[0] == "Earlier reports of LLM-JEPA − NTP: the paper +14.17 pp (Llama)."
    assert f"is {effect['mean']:+.1f} pp [{effect['ci_low']:+.1f}, {effect['ci_high']:+.1f}]" in lines[1]
    assert lines[2].startswith(opening), (design.verdict(result), lines[2])
    if opening.startswith("The positive side is reproduced"):
        carried = design.verdict(result).endswith(", carried by termination")
        assert lines[2].endswith("termination carries it." if carried else "not shown to be carried by termination.")
        weak = {**result, "effect_b": {**result["effect_b"], "termination": {**result["effect_b"]["termination"],
                                                                            "ci_low": -1.0}}}
        assert design.verdict(weak) == "positive side reproduced, not shown to be carried by termination"
        assert discussion(design, weak, (), "tiny")[2].endswith("it is not shown to be carried by termination.")
    if opening.startswith("Inconclusive"):
        assert ("cannot tell a null from" in lines[2]) == (effect["ci_low"] <= 0) != ("cannot tell a small gain" in lines[2])
    if opening.startswith("The positive side is absent"):
        assert f"ends at {effect['ci_high']:+.1f} pp" in lines[2]
        assert ("This agrees with a null." in lines[2]) == (effect["ci_low"] <= 0) != ("A smaller gain" in lines[2])
        # a small gain above zero without a significant interaction is still "absent" (the pre-registered rule),
        # and the paragraph must not call it a null
        small = {"mean": 1.3, "ci_low": 0.3, "ci_high": 2.3, "p": 0.02, "sd": 1.2}
        above = {**result, "effect_b": {**result["effect_b"], **small}, "interaction": {**result["interaction"],
                                                                                         "p": 0.4}}
        assert design.verdict(above) == "absent"
        assert answer(design, above)[0].startswith("**absent (a gain of +5 pp or more is excluded under official "
                                                   "conditions).** LLM-JEPA − NTP on exact match, 8 seeds")
        text = discussion(design, above, (), "tiny")[2]
        assert "A smaller gain remains" in text and "null" not in text and "does not show that" in text


def test_compare_interaction_writes_the_2x2_report_of_anyfactorial_store(tmp_path, capsys):
    from lmjepa.cli.main import main

    factorial_store(tmp_path)
    cells = ["ntp", "llm-jepa", "ntp-official", "llm-jepa-official"]
    assert main(["compare", str(tmp_path / "results.jsonl"), "--interaction", *cells, "--conditions", "mine,theirs",
                 "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    exact = {(r["cell"], r["seed"]): r["metrics"]["exact_match"] for r in rows}
    per_seed = [(exact["llm-jepa-official", s] - exact["ntp-official", s]) - (exact["llm-jepa", s] - exact["ntp", s])
                for s in (1, 2, 3)]
    expected = t_interval(per_seed)
    assert (f"interaction {expected['mean']:+.1f} pp [{expected['ci_low']:+.1f}, {expected['ci_high']:+.1f}]"
            in report.splitlines()[5])
    assert report.splitlines()[4].startswith("**llm-jepa − ntp on exact match, 3 seeds** (")  # no dispute verdict
    assert "under theirs conditions" in report and "interim" not in report
    assert (tmp_path / "out" / "interaction.png").stat().st_size > 1000
    assert "written:" in capsys.readouterr().out
    # rows that record their wall time: the report ends with what each cell cost, against base A, then what made
    # the records
    from lmjepa.analysis.cost import render_cost
    from lmjepa.analysis.origin import render_origin

    assert "## Cost" not in report
    timed = [{**row, "wall_seconds": 60.0 * (1 + index % 4)} for index, row in enumerate(rows)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timed))
    assert main(["compare", str(tmp_path / "results.jsonl"), "--interaction", *cells, "--out", str(tmp_path / "t")]) == 0
    cost = render_cost(timed, "ntp")
    assert "| `llm-jepa` | 3 | 2.0 min (×2.00) |" in cost  # seed-major rows: ntp 1 min, llm-jepa 2 min
    assert (tmp_path / "t" / "report.md").read_text().endswith("\n".join(cost + render_origin(timed)) + "\n")


@pytest.mark.parametrize("store_rows, cells, message", [
    (None, ["ntp", "llm-jepa", "ntp-official", "nope"], "no runs of cell(s) ['nope']; the store has"),
    (None, ["ntp", "ntp", "ntp-official", "llm-jepa-official"], "needs 4 different cells"),
    (4, ["ntp", "llm-jepa", "ntp-official", "llm-jepa-official"], "need ≥ 2 seeds with all of"),
    (0, ["ntp", "llm-jepa", "ntp-official", "llm-jepa-official"], "results.jsonl: results file not found"),
])
def test_compare_interaction_refuses_bad_input_in_one_line(tmp_path, capsys, store_rows, cells, message):
    from lmjepa.cli.main import main

    factorial_store(tmp_path)
    store = tmp_path / "results.jsonl"
    if store_rows is not None:  # keep the first seed's rows only (or none: no store)
        lines = store.read_text().splitlines()[:store_rows]
        store.write_text("".join(line + "\n" for line in lines)) if lines else store.unlink()
    assert main(["compare", str(store), "--interaction", *cells]) == 2
    assert message in capsys.readouterr().err


def test_the_per_seed_table_and_the_power_line_come_from_the_records(tmp_path):
    import re

    from statsmodels.stats.power import TTestPower

    from lmjepa.analysis.factorial import Design, analyse, render

    factorial_store(tmp_path, seeds=(1, 2, 3, 4))
    design = Design("ntp", "llm-jepa", "ntp-official", "llm-jepa-official", planned_seeds=8)
    result = analyse(design, tmp_path)
    report = render(design, result)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    exact = {(r["cell"], r["seed"]): r["metrics"]["exact_match"] for r in rows}
    for seed in (1, 2, 3, 4):
        v = [exact[(c, seed)] for c in design.cells]
        a, b = v[1] - v[0], v[3] - v[2]
        assert (f"| {seed} | " + " | ".join(f"{x:.1f}" for x in v) + f" | {a:+.1f} | {b:+.1f} | {b - a:+.1f} |") in report
    # the minimum detectable effects: a two-sided t-test on 8 seeds has 80 % power there (statsmodels, directly)
    found = re.search(r"official effect of ([\d.]+) pp and an interaction of ([\d.]+) pp", report)
    for value, key in zip(found.groups(), ("effect_b", "interaction")):
        power = TTestPower().power(effect_size=float(value) / result[key]["sd"], nobs=8, alpha=0.05,
                                   alternative="two-sided")
        assert power == pytest.approx(0.8, abs=0.01)
    plain = render(Design(*design.cells, verdicts=False), result)  # a user's store: the power at the seeds it has
    assert "Power: at these n = 4 seeds" in plain and "Power: at the planned n = 8 seeds" in report
