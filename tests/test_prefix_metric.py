"""prefix_match (LLM-JEPA §4.1: pretraining from scratch) on the issue's edge cases, and its task."""

import pytest

from lmjepa.data.jsonl import Example
from lmjepa.evaluation.evaluate import score
from lmjepa.evaluation.metrics import prefix_match
from lmjepa.evaluation.tasks import get_task


@pytest.mark.parametrize("prediction, reference, expected", [
    ("(dog)*", "(dog)*", True),  # equal
    ("(dog)*.*truck junk", "(dog)*", True),  # the target, then anything
    ("  (dog)*\n", " (dog)* ", True),  # surrounding and trailing whitespace stripped on both sides
    ("", "(dog)*", False),  # empty generation
    ("(dog", "(dog)*", False),  # target longer than the generation
    ("x(dog)*", "(dog)*", False),  # the target later, not at the start
    ("anything", "", False),  # an empty target credits nothing
    ("   ", "  ", False),
])
def test_prefix_match_edge_cases(prediction, reference, expected):
    assert prefix_match(prediction, reference) is expected


def test_the_pretraining_task_reports_prefix_and_exact_match():
    task = get_task("nlrx-synth-pretrain")
    examples = [Example("a", "(dog)*"), Example("b", "[0-9]"), Example("c", "ab")]
    metrics, rows = score(["(dog)* more", "[0-9]", "a"], examples, task, progress=False)
    assert metrics["prefix_match"] == pytest.approx(200 / 3) and metrics["exact_match"] == pytest.approx(100 / 3)
    assert [r["prefix_match"] for r in rows] == [True, True, False]
