"""The Records section of the compare and dispute reports: runs grouped by code version and by environment,
checked against a count made independently (collections.Counter) on hand-made rows."""

from __future__ import annotations

import json
from collections import Counter

from lmjepa.analysis.origin import records_by, render_origin
from lmjepa.cli.main import main

INTEL = {"torch": "2.13.0+cpu", "transformers": "5.24.0", "python": "3.11.7", "device": "cpu",
         "cpu": "Intel(R) Xeon(R) Processor", "threads": 2}
AMD = INTEL | {"cpu": "AMD EPYC"}


def _row(cell, seed, version, environment=None):
    metrics = {"exact_match": 50.0 + seed} | ({"environment": environment} if environment else {})
    return {"cell": cell, "seed": seed, "code_version": version, "metrics": metrics}


ROWS = [_row("ntp", 1, "lmjepa 0.1.0 aaa1111+dirty"), _row("llm-jepa", 1, "lmjepa 0.1.0 aaa1111+dirty", AMD),
        _row("ntp", 2, "lmjepa 0.1.0 bbb2222", AMD), _row("llm-jepa", 2, "lmjepa 0.1.0 bbb2222", INTEL),
        _row("ntp", 3, "lmjepa 0.1.0 bbb2222", INTEL), _row("llm-jepa", 3, None, INTEL)]


def test_runs_are_grouped_by_code_and_environment_as_counted_independently():
    groups = records_by(ROWS)
    versions = Counter(r["code_version"] or "not recorded" for r in ROWS)
    assert {k: len(v) for k, v in groups["code"].items()} == dict(versions)
    assert list(groups["code"]) == ["lmjepa 0.1.0 aaa1111+dirty", "lmjepa 0.1.0 bbb2222", "not recorded"]
    processors = Counter(r["metrics"].get("environment", {}).get("cpu") for r in ROWS)
    assert sorted(len(v) for v in groups["environment"].values()) == sorted(processors.values())
    lines = render_origin(ROWS)
    assert lines[1] == "## Records" and "The 6 runs of the store" in lines[3]
    assert "| `lmjepa 0.1.0 bbb2222` | 3 | `ntp` 2, 3; `llm-jepa` 2 |" in lines
    assert "| `not recorded` | 1 | `llm-jepa` 3 |" in lines
    assert ("1 run marked `+dirty` ran" not in "\n".join(lines)
            and "2 runs marked `+dirty` ran from a checkout" in "\n".join(lines))
    assert "| 2.13.0+cpu | 5.24.0 | 3.11.7 | cpu | Intel(R) Xeon(R) Processor | 2 | 3 | `llm-jepa` 2, 3; `ntp` 3 |" in lines
    assert "| not recorded |  |  |  |  |  | 1 | `ntp` 1 |" in lines
    assert "1 run records no environment" in "\n".join(lines)


def test_clean_records_get_no_caveat_and_no_rows_no_section():
    clean = [r for r in ROWS if r["metrics"].get("environment") and "+dirty" not in (r["code_version"] or "x+dirty")]
    text = "\n".join(render_origin(clean, "What made the records", "A note."))
    assert "## What made the records" in text and text.count("A note.") == 1
    assert "+dirty" not in text and "no environment" not in text
    assert render_origin([]) == []


def test_lmjepa_compare_writes_the_records_section(tmp_path):
    store = tmp_path / "results.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["compare", str(store), "--baseline", "ntp", "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "\n".join(render_origin(ROWS)) in report
