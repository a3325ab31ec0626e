"""Committed results that state numbers in sentences regenerate from their records: each script's ``--check``
rebuilds its report (tables, sentences) from the committed records and fails if anything differs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize("script", ["dispute-nlrx/report.py", "pretrain-llm-jepa/scratch-s41/table.py"])
def test_committed_reports_are_regenerated_from_their_records(script):
    done = subprocess.run([sys.executable, str(RESULTS / script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dispute_report_adds_the_fifth_cell_once_it_has_run(tmp_path):
    import importlib.util

    from conftest import factorial_store

    spec = importlib.util.spec_from_file_location("dispute_report", RESULTS / "dispute-nlrx" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
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

    one = tmp_path / "one-fifth"  # the fifth cell's first seed: no interval yet, said so, never "[nan, nan]"
    one.mkdir()
    factorial_store(one, seeds=(1, 2, 3), extra={"ntp-official-eot": 0.5})
    store = one / "results.jsonl"
    store.write_text("".join(line + "\n" for line in store.read_text().splitlines()
                             if '"ntp-official-eot"' not in line or '"seed": 1,' in line))
    text, lines = report.generated(one)[:2]
    assert "nan" not in text and "nan" not in lines[-1]
    assert "(`ntp-official-eot`, 1 seed), exact match moves " in lines[-1] and "(no interval: 1 seed)" in lines[-1]
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


def test_the_dispute_report_says_whether_each_simple_effect_compares_runs_of_one_machine():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dispute_report", RESULTS / "dispute-nlrx" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    intel, amd = {"cpu": "Intel"}, {"cpu": "AMD"}
    made = {("ntp", 1): intel, ("llm-jepa", 1): intel, ("ntp-official", 1): amd, ("llm-jepa-official", 1): intel,
            ("ntp", 2): None, ("llm-jepa", 2): amd, ("ntp-official", 2): amd, ("llm-jepa-official", 2): amd,
            ("ntp", 3): amd}  # seed 3's LLM-JEPA run is not in yet: no pair
    rows = [{"cell": c, "seed": s, "metrics": {"environment": e} if e else {}} for (c, s), e in made.items()]
    assert report.same_machine(rows) == ("Of the 4 seed-paired LLM-JEPA − NTP comparisons (each under one set of "
                                         "conditions), 2 compare runs made in the same environment, 1 in different "
                                         "ones, and in 1 at least one run records none.")


def test_the_dispute_report_reads_the_complete_fifth_cell_against_both_official_cells(tmp_path):
    import importlib.util

    from conftest import factorial_store

    spec = importlib.util.spec_from_file_location("dispute_report", RESULTS / "dispute-nlrx" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
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
