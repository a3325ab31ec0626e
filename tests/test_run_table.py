"""`lmjepa table`'s Markdown: the training CPU seconds column appears exactly when a run records them, and every
row keeps as many cells as the header."""

from __future__ import annotations

from lmjepa.evaluation.report import comparison_table

OLD = {"task": "nlrx-synth", "lbd": 0.0, "predictors": 1, "metric": "regex", "semantic_match": 64.5,
       "exact_match": 48.0, "n": 200, "train_seconds": 407.7, "eval_seconds": 25.7}
NEW = OLD | {"lbd": 1.0, "train_seconds": 689.2, "train_cpu_seconds": 1301.4}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_the_cpu_column_appears_only_when_recorded():
    old = comparison_table({"ntp": OLD}).splitlines()
    assert _cells(old[0])[-3:] == ["n", "train s", "eval s"] and _cells(old[2])[-2:] == ["407.7", "25.7"]
    both = comparison_table({"ntp": OLD, "llm-jepa": NEW}).splitlines()
    assert _cells(both[0])[-4:] == ["n", "train s", "train CPU s", "eval s"]
    assert _cells(both[2])[-3:] == ["407.7", "", "25.7"] and _cells(both[3])[-3:] == ["689.2", "1301.4", "25.7"]
    assert {len(_cells(line)) for line in both} == {12} and {len(_cells(line)) for line in old} == {11}
