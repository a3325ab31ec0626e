"""Committed results that state numbers in sentences regenerate from their records: each script's ``--check``
rebuilds its report (tables, sentences) from the committed records and fails if anything differs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.fixture(scope="module")
def report():
    """The dispute's ``report.py``, loaded as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("dispute_report", RESULTS / "dispute-nlrx" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", ["dispute-nlrx/report.py", "pretrain-llm-jepa/scratch-s41/table.py"])
def test_committed_reports_are_regenerated_from_their_records(script):
    done = subprocess.run([sys.executable, str(RESULTS / script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dispute_report_adds_the_fifth_cell_once_it_has_run(tmp_path, report):
    from conftest import factorial_store

    factorial_store(tmp_path, seeds=(1, 2, 3))
    text, lines = report.generated(tmp_path)[:2]
    assert "Not run yet: `ntp-official-eot`" in text and not any("ntp-official-eot" in line for line in lines)
    assert "| `ntp-official-eot` (if run): stops in > 90 % of rows | `ntp-official-eot`, stopped | > 90 | – | 0 | not run |" in text

    rows = tmp_path / "with-fifth"
    rows.mkdir()
    factorial_store(rows, seeds=(1, 2, 3), extra={"ntp-official-eot": 0.5})
    text, lines = report.generated(rows)[:2]
    by_seed = {}
    for row in map(json.loads, (rows / "results.jsonl").read_text().splitlines()):
        by_seed.setdefault(row["cell"], {})[row["seed"]] = row["metrics"]["exact_match"]
    delta = sum(by_seed["ntp-official-eot"][s] - by_seed["ntp-official"][s] for s in (1, 2, 3)) / 3
    assert "Secondary analysis 5" in text and f"| `ntp-official-eot` − `ntp-official` | 3 | {delta:+.1f} pp [" in text
    assert lines[-1].startswith("With the end-of-turn token trained under official conditions (`ntp-official-eot`, "
                                f"3 seeds), exact match moves {delta:+.1f} pp [")
    assert "so far: " in text and "| 3 | so far: not run" not in text
    reading = next(line for line in text.splitlines() if line.startswith("The fifth cell (`ntp-official-eot`, 3 of 8"))
    assert f"against `ntp-official` exact match moves {delta:+.1f} pp [" in reading.replace("Against", "against")
    assert "so far: " in reading and reading.endswith("Interim: read it once all 8 seeds are in.")
    steps = {tuple(line.split("`")[1::2][:2]): line.split(" | ")[2] for line in text.splitlines()
             if line.startswith("| `ntp") and " | 3 | " in line}  # the exploratory two-step table, by (cell, base)
    mean = {(a, b): sum(by_seed[a][s] - by_seed[b][s] for s in (1, 2, 3)) / 3
            for a, b in [("ntp-official-eot", "ntp"), ("ntp-official", "ntp-official-eot"), ("ntp-official", "ntp")]}
    for pair, value in mean.items():  # each row's mean, computed from the store itself
        assert steps[pair].startswith(f"{value:+.1f} pp [")
    assert f"the official conditions move NTP's exact match {mean[('ntp-official', 'ntp')]:+.1f} pp [" in text

    one = tmp_path / "one-fifth"  # the fifth cell's first seed: no interval yet, said so, never "[nan, nan]"
    one.mkdir()
    factorial_store(one, seeds=(1, 2, 3), extra={"ntp-official-eot": 0.5})
    store = one / "results.jsonl"
    store.write_text("".join(line + "\n" for line in store.read_text().splitlines()
                             if '"ntp-official-eot"' not in line or '"seed": 1,' in line))
    text, lines = report.generated(one)[:2]
    assert "nan" not in text and "nan" not in lines[-1]
    assert "(`ntp-official-eot`, 1 seed), exact match moves " in lines[-1] and "(no interval: 1 seed)" in lines[-1]
    assert "The fifth cell (`ntp-official-eot`, 1 of 8 seeds; " in text  # of the seeds planned: plural
    reaches = next(line for line in text.splitlines() if line.startswith("| `ntp-official-eot` (if run): reaches"))
    assert reaches.endswith("| 1 | so far: held by the mean (no interval: 1 seed) |")  # its rate 0.5 > 0.3


def test_the_dispute_was_pre_registered_before_its_first_result():
    from lmjepa.pipeline.provenance import first_commit

    shallow = subprocess.run(["git", "-C", str(RESULTS), "rev-parse", "--is-shallow-repository"],
                             capture_output=True, text=True).stdout.strip()
    if shallow != "false":
        pytest.skip("needs the repository's history (a full clone)")
    registered = first_commit(RESULTS / "dispute-nlrx" / "PREREGISTRATION.md")
    first_rows = first_commit(RESULTS / "dispute-nlrx" / "runs" / "results.jsonl")
    assert registered is not None and first_rows is not None and registered[1] < first_rows[1]


def test_the_dispute_report_says_whether_each_simple_effect_compares_runs_of_one_machine(report):
    intel, amd = {"cpu": "Intel"}, {"cpu": "AMD"}
    made = {("ntp", 1): intel, ("llm-jepa", 1): intel, ("ntp-official", 1): amd, ("llm-jepa-official", 1): intel,
            ("ntp", 2): None, ("llm-jepa", 2): amd, ("ntp-official", 2): amd, ("llm-jepa-official", 2): amd,
            ("ntp", 3): amd}  # seed 3's LLM-JEPA run is not in yet: no pair
    rows = [{"cell": c, "seed": s, "metrics": {"environment": e} if e else {}} for (c, s), e in made.items()]
    assert report.same_machine(rows) == ("Of the 4 seed-paired LLM-JEPA − NTP comparisons (each under one set of "
                                         "conditions), 2 compare runs made in the same environment, 1 in different "
                                         "ones, and in 1 at least one run records none.")


def test_the_dispute_report_reads_the_complete_fifth_cell_against_both_official_cells(tmp_path, report):
    from conftest import factorial_store

    factorial_store(tmp_path, seeds=tuple(range(1, 9)), official=(0.05, 0.2), extra={"ntp-official-eot": 0.6})
    text = report.generated(tmp_path).report
    reading = next(line for line in text.splitlines() if line.startswith("The fifth cell (`ntp-official-eot`, 8 of 8"))
    assert "so far" not in reading and "Interim" not in reading
    assert reading.endswith("here LLM-JEPA's gain under official conditions is smaller than what the official "
                            "collator's masking of the end-of-turn token costs.")
    flipped = tmp_path / "flipped"  # the fifth cell below llm-jepa-official
    flipped.mkdir()
    factorial_store(flipped, seeds=tuple(range(1, 9)), official=(0.05, 0.6), extra={"ntp-official-eot": 0.2})
    reading = next(line for line in report.generated(flipped).report.splitlines()
                   if line.startswith("The fifth cell (`ntp-official-eot`, 8 of 8"))
    assert reading.endswith("its gain there is not only the termination that token restores.")


def test_the_dispute_reads_the_other_scales_only_once_the_verdict_is_drawn_and_only_what_the_intervals_show(report):
    def t(mean, low, high, p=0.01):
        return {"n": 8, "mean": mean, "sd": 1.0, "ci_low": low, "ci_high": high, "p": p}

    def result(n_seeds, odds_low, eot_low):
        cells = {"ntp": t(66.8, 65, 68), "llm-jepa": t(67.7, 66, 69), "ntp-official": t(0.2, 0, 0.5),
                 "llm-jepa-official": t(1.2, 0.4, 2.0)}
        return {"seeds": list(range(n_seeds)), "cells": cells, "effect_a": t(0.9, -0.4, 2.2, 0.15),
                "effect_b": t(1.0, -0.02, 2.0, 0.053), "interaction": t(0.1, -1.8, 2.0, 0.88),
                "row_level": {"unit": "odds ratio", "estimate": 5.8, "ci_low": odds_low, "ci_high": 12.0, "p": 1e-6},
                "secondary": {"p_end_of_turn": {"effect_b": t(0.017, eot_low, 0.031), "interaction": t(0.016, eot_low, 0.028)},
                              "end_of_turn_greedy": {"effect_b": t(1.9, 0.5, 3.3)},
                              "contains_target": {"effect_b": t(0.1, -1.5, 1.8, 0.86)}}}

    assert report.scale_reading(result(7, 2.8, 0.004)) == [] and report.scale_line(result(7, 2.8, 0.004)) == []
    shown = report.scale_reading(result(8, 2.8, 0.004))[1]
    assert "interaction odds ratio of 5.8 [2.8, 12.0], p = 1.0e-06" in shown and "Both can hold" in shown
    assert shown.endswith("what it changes there is stopping, not content, and too little to lift exact match off "
                          "the floor.")
    unclear = report.scale_reading(result(8, 0.9, -0.001))[1]  # the odds ratio's interval includes 1, p(eot)'s 0
    assert "Both can hold" not in unclear and "much more" not in unclear and "stopping, not content" not in unclear
    assert report.scale_line(result(8, 2.8, 0.004))[0].startswith(
        "Secondary (exploratory): the row-level interaction odds ratio is 5.8 [2.8, 12.0]")
    linear = result(8, 2.8, 0.004) | {"row_level": {"unit": "pp", "estimate": 0.3, "ci_low": -0.9, "ci_high": 1.4,
                                                     "p": 0.6}}
    assert "odds" not in report.scale_reading(linear)[1] and report.scale_line(linear) == []
