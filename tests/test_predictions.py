"""Pre-registered predictions judged from the records, and seed-paired comparisons of extra cells
(``analysis/predictions.py``), against numpy / scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lmjepa.analysis.predictions import Prediction, check, observe, paired_effects, render_checks, render_paired_effects


def _by_cell():
    """cell → seed → metrics; seed 4 has only `a` (a partial block)."""
    a = {1: 60.0, 2: 64.0, 3: 62.0, 4: 90.0}
    b = {1: 61.0, 2: 63.0, 3: 65.0}
    return {"a": {s: {"exact_match": v, "contains_target": 70.0, "stopped": 100.0} for s, v in a.items()},
            "b": {s: {"exact_match": v, "contains_target": 70.0, "stopped": 100.0} for s, v in b.items()}}


def test_a_cell_mean_is_judged_on_its_mean_and_t_interval_over_the_given_seeds():
    by_cell = _by_cell()
    values = [60.0, 64.0, 62.0]  # seed 4 is not in the given seeds
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    seen = observe(Prediction("a in 50–70", "a", low=50, high=70), by_cell, [1, 2, 3])
    assert seen["seeds"] == [1, 2, 3] and seen["value"] == pytest.approx(62.0)
    assert seen["interval"]["ci_low"] == pytest.approx(62.0 - half) and seen["status"] == "held"
    assert observe(Prediction("a in 60–64", "a", low=60, high=64), by_cell, [1, 2, 3])["status"].startswith(
        "held by the mean")
    assert observe(Prediction("a ≥ 63", "a", low=63), by_cell, [1, 2, 3])["status"] == "not held"
    assert observe(Prediction("a ≥ 63", "a", low=63), by_cell, [1, 2, 3, 4])["value"] == pytest.approx(69.0)
    # one seed has no interval: in range is "held by the mean", never "held"
    one = observe(Prediction("a in 50–70", "a", low=50, high=70), by_cell, [1])
    assert one["interval"] is None and one["status"] == "held by the mean (no interval: 1 seed)"
    assert observe(Prediction("a ≥ 63", "a", low=63), by_cell, [1])["status"] == "not held"


def test_a_paired_difference_and_open_bounds():
    by_cell = _by_cell()
    seen = observe(Prediction("b − a ≥ 1", "b", base="a", low=1), by_cell, [1, 2, 3, 4])
    assert seen["seeds"] == [1, 2, 3] and seen["value"] == pytest.approx(1.0)  # (1 − 1 + 3) / 3
    assert seen["interval"]["p"] == pytest.approx(stats.ttest_1samp([1.0, -1.0, 3.0], 0).pvalue)
    assert seen["status"].startswith("held by the mean")  # the value sits on the closed bound
    assert observe(Prediction("b − a > 1", "b", base="a", low=1, strict=True), by_cell, [1, 2, 3])["status"] == \
        "not held"


def test_the_termination_share_in_closed_forms():
    # contains unchanged → the content part is 0 and termination carries all of Δ (share 1);
    # clean unchanged (exact / contains) → termination carries none (share 0).
    same_contains = {"n": {1: {"exact_match": 10.0, "contains_target": 60.0}, 2: {"exact_match": 20.0, "contains_target": 60.0}},
                     "j": {1: {"exact_match": 30.0, "contains_target": 60.0}, 2: {"exact_match": 26.0, "contains_target": 60.0}}}
    same_clean = {"n": {1: {"exact_match": 10.0, "contains_target": 20.0}, 2: {"exact_match": 20.0, "contains_target": 40.0}},
                  "j": {1: {"exact_match": 30.0, "contains_target": 60.0}, 2: {"exact_match": 25.0, "contains_target": 50.0}}}
    share = Prediction("more than half by termination", "j", base="n", part="termination", low=0.5, strict=True)
    assert observe(share, same_contains, [1, 2])["value"] == pytest.approx(1.0)
    assert observe(share, same_contains, [1, 2])["status"] == "held"
    assert observe(share, same_clean, [1, 2])["value"] == pytest.approx(0.0, abs=1e-12)
    assert observe(share, same_clean, [1, 2])["status"] == "not held"
    lacking = {c: {**runs, 3: {"exact_match": 50.0}} for c, runs in same_contains.items()}  # seed 3: no contains
    assert observe(share, lacking, [1, 2, 3])["seeds"] == [1, 2]
    falling = {"n": same_contains["j"], "j": same_contains["n"]}
    assert observe(share, falling, [1, 2])["status"] == "not held (no positive Δ to split)"


def test_not_run_bad_predictions_and_the_table():
    by_cell = _by_cell()
    checked = check([Prediction("c > 90", "c", metric="stopped", low=90, strict=True),
                     Prediction("b − a within ±3", "b", base="a", low=-3, high=3)], by_cell, [1, 2, 3])
    assert checked[0][1]["status"] == "not run" and checked[0][1]["seeds"] == []
    lines = render_checks(checked, interim=True)
    assert "| – | 0 | not run |" in lines[2] and "> 90" in lines[2]
    assert "| +1.00 [" in lines[3] and "so far: held" in lines[3] and "-3 to 3" in lines[3]
    with pytest.raises(ValueError, match="empty range"):
        Prediction("x", "a", low=3, high=2)
    with pytest.raises(ValueError, match="needs base"):
        Prediction("x", "a", part="termination", low=0.5)
    with pytest.raises(ValueError, match="names no range"):
        Prediction("x", "a")
    with pytest.raises(ValueError, match="base and cell are both 'a'"):
        Prediction("x", "a", base="a", low=0)
    with pytest.raises(ValueError, match="part must be one of"):
        Prediction("x", "a", base="b", part="content", low=0.5)


def test_paired_effects_are_t_tests_of_the_differences_and_their_parts_sum_to_delta():
    rng = np.random.default_rng(0)
    by_cell = {c: {s: {"exact_match": float(e), "contains_target": float(e + rng.uniform(1, 20)),
                       "stopped": float(rng.uniform(0, 100))} for s, e in zip(range(5), rng.uniform(5, 60, 5))}
               for c in ("eot", "base")}
    by_cell["eot"].pop(4)
    (row, missing) = paired_effects(by_cell, [("eot", "base"), ("eot", "absent")], [0, 1, 2, 3, 4])
    diffs = [by_cell["eot"][s]["exact_match"] - by_cell["base"][s]["exact_match"] for s in range(4)]
    assert row["seeds"] == [0, 1, 2, 3] and row["exact_match"]["mean"] == pytest.approx(np.mean(diffs))
    assert row["exact_match"]["p"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert row["content"]["mean"] + row["termination"]["mean"] == pytest.approx(np.mean(diffs))
    assert missing == {"cell": "eot", "base": "absent", "seeds": []}
    lines = render_paired_effects([row, missing])
    assert lines[0].startswith("| comparison | seeds | Δ exact | content part | termination part")
    assert lines[2].startswith(f"| `eot` − `base` | 4 | {np.mean(diffs):+.1f} pp") and lines[3].endswith("| – | – |")


def test_compare_interaction_checks_a_predictions_file(tmp_path, capsys):
    from conftest import factorial_store

    from lmjepa.cli.main import main

    factorial_store(tmp_path)
    claims = tmp_path / "predictions.yaml"
    claims.write_text("predictions:\n"
                      "  - {text: 'ntp 50–70 %', cell: ntp, low: 50, high: 70}\n"
                      "  - {text: 'treated beats base under official', cell: llm-jepa-official, base: ntp-official,"
                      " low: 0, strict: true}\n")
    assert main(["compare", str(tmp_path / "results.jsonl"), "--interaction", "ntp", "llm-jepa", "ntp-official",
                 "llm-jepa-official", "--predictions", str(claims)]) == 0
    report = (tmp_path / "interaction" / "report.md").read_text()
    from lmjepa.analysis.factorial import load
    by_cell = load(tmp_path / "results.jsonl")[0]
    ntp = np.mean([by_cell["ntp"][s]["exact_match"] for s in (1, 2, 3)])
    assert "## Pre-registered predictions" in report and f"--predictions {claims}" in report
    assert f"| ntp 50–70 % | `ntp`, exact_match | 50 to 70 | {ntp:.2f} [" in report
    assert "| treated beats base under official | `llm-jepa-official` − `ntp-official`, exact_match (pp) | > 0 | +" in report


@pytest.mark.parametrize("text, message", [
    ("predictions:\n  - {text: a, cell: ntp, hi: 3}\n", "predictions[0]: unknown config key 'hi'; did you mean 'high'?"),
    ("predictions:\n  - {text: a, cell: ntp, low: 0}\n  - {text: b, cell: ntp, low: 3, high: 2}\n", "predictions[1]: prediction 'b': empty range"),
    ("predictions:\n  - {text: a}\n", "predictions[0]: expects a mapping with at least `text` and `cell`"),
    ("predictions:\n  - {text: a, cell: ntp, low: high}\n", "predictions[0]: "),
    ("claims: []\n", "expects one key, `predictions`, a non-empty list"),
    ("predictions:\n  - {text: a, cell: ntp, metric: exact, low: 0}\n", "no run of cell 'ntp' records ['exact'] (prediction 0, 'a'); recorded: ['contains_target', 'exact_match', 'stopped']"),
    ("predictions:\n  - {text: a, cell: nope, low: 0}\n", "no runs of cell(s) ['nope']"),
])
def test_a_bad_predictions_file_is_one_line_naming_the_file_and_the_prediction(tmp_path, capsys, text, message):
    from conftest import factorial_store

    from lmjepa.cli.main import main

    factorial_store(tmp_path)
    claims = tmp_path / "predictions.yaml"
    claims.write_text(text)
    assert main(["compare", str(tmp_path / "results.jsonl"), "--interaction", "ntp", "llm-jepa", "ntp-official",
                 "llm-jepa-official", "--predictions", str(claims)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "interaction" / "report.md").exists()


def test_compare_against_a_baseline_checks_predictions_over_the_seeds_each_shares(tmp_path, capsys):
    from conftest import factorial_store

    from lmjepa.analysis.factorial import load
    from lmjepa.cli.main import main

    factorial_store(tmp_path, seeds=(1, 2, 3, 4))
    store = tmp_path / "results.jsonl"
    store.write_text("".join(line + "\n" for line in store.read_text().splitlines()
                             if not ('"llm-jepa"' in line and '"seed": 4' in line)))  # llm-jepa lacks seed 4
    claims = tmp_path / "predictions.yaml"
    claims.write_text("predictions:\n  - {text: 'no gain', cell: llm-jepa, base: ntp, low: -3, high: 3}\n"
                      "  - {text: 'ntp stops', cell: ntp, metric: stopped, low: 99}\n")
    assert main(["compare", str(store), "--baseline", "ntp", "--predictions", str(claims)]) == 0
    report = (tmp_path / "compare" / "report.md").read_text()
    by_cell = load(store)[0]
    delta = np.mean([by_cell["llm-jepa"][s]["exact_match"] - by_cell["ntp"][s]["exact_match"] for s in (1, 2, 3)])
    assert report.count("## Pre-registered predictions") == 1 and f"From `{claims}`." in report
    assert report.index("(deltas.png)") < report.index("## Pre-registered predictions")  # appended after the figures
    assert f"| no gain | `llm-jepa` − `ntp`, exact_match (pp) | -3 to 3 | {delta:+.2f} [" in report and "| 3 |" in report
    assert "| ntp stops | `ntp`, stopped | ≥ 99 | 100.00 [100.00, 100.00] | 4 | held |" in report
    claims.write_text("predictions:\n  - {text: 'x', cell: llm-jepa-offical, low: 0}\n")
    assert main(["compare", str(store), "--baseline", "ntp", "--predictions", str(claims)]) == 2
    assert "no runs of cell(s) ['llm-jepa-offical'] (prediction 0, 'x')" in capsys.readouterr().err


def test_predictions_with_mcnemar_is_refused(capsys):
    from lmjepa.cli.main import main

    assert main(["compare", "--mcnemar", "a", "b", "--predictions", "p.yaml"]) == 2
    assert "--predictions checks a store (with --baseline or --interaction), not --mcnemar" in capsys.readouterr().err
