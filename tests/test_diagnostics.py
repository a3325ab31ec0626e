"""Content vs termination diagnostics (issue 18): hand-built predictions, each value computed by hand."""

from __future__ import annotations

import json
import random

import pytest
import torch

from lmjepa.training.config import EvalConfig
from lmjepa.data.jsonl import Example
from lmjepa.evaluation.diagnostics import contains, summarize
from lmjepa.evaluation.evaluate import rescore, score
from lmjepa.evaluation.generate import generate, prompt_ids
from lmjepa.evaluation.tasks import get_task
from lmjepa.stats.compare import compare, render_markdown
from lmjepa.stats.termination import carried_by, split_delta

from conftest import tiny_llama

TARGET = "(dog)+"
# prediction, stopped, contains, exact, exact after cutting at the first line break, extra tokens
CASES = [
    (TARGET, True, True, True, True, 0),                         # equal to the target
    (TARGET + "\nlines with junk", True, True, False, True, 3),  # target, then junk (3 words after it)
    ("junk " + TARGET, True, True, False, False, 0),              # junk, then the target
    (TARGET + " and more and more", False, True, False, False, 4),  # no end token: ran to the budget
    ("", True, False, False, False, None),                      # empty prediction
]


def words(text: str) -> int:  # an independent token counter: whitespace-separated words
    return len(text.split())


def test_each_diagnostic_by_hand():
    predictions = [c[0] for c in CASES]
    examples = [Example(text="q", code=TARGET)] * len(CASES)
    metrics, rows = score(predictions, examples, get_task("nlrx-synth"), progress=False,
                          stopped=[c[1] for c in CASES], count_tokens=words)
    for row, (_, stopped, has, exact, cut, extra) in zip(rows, CASES):
        assert (row["stopped"], row["contains_target"], row["exact_match"], row["exact_if_truncated"],
                row["extra_tokens"]) == (stopped, has, exact, cut, extra)
    assert metrics["contains_target"] == pytest.approx(100 * 4 / 5)
    assert metrics["stopped"] == pytest.approx(100 * 4 / 5)
    assert metrics["exact_match"] == pytest.approx(100 * 1 / 5)
    assert metrics["exact_if_truncated"] == pytest.approx(100 * 2 / 5)
    assert metrics["mean_extra_tokens"] == pytest.approx((0 + 3 + 0 + 4) / 4)
    assert metrics["n_extra_tokens"] == 4
    # regex tasks: the cut prediction is judged semantically too; "(dog)+" ≡ "(dog)(dog)*"
    assert [r["semantic_if_truncated"] for r in rows] == [True, True, False, False, False]
    assert metrics["semantic_if_truncated"] == pytest.approx(40.0)


def test_semantic_if_truncated_decides_the_cut_text():
    metrics, rows = score(["(dog)(dog)*\nmore text"], [Example("q", TARGET)], get_task("nlrx-synth"), progress=False)
    assert rows[0]["semantic_match"] is False  # the whole text is not a regex of the same language
    assert rows[0]["semantic_if_truncated"] is True
    assert rows[0]["contains_target"] is False  # a different string, the same language


@pytest.mark.parametrize("prediction, reference, metric, expected, end", [
    ("so #### 18 and then 20", "x #### 18", "gsm8k", True, 10),     # the gold number after a '####'
    ("she has 18 apples, it is 18", "#### 18", "gsm8k", True, 27),  # the last number
    ("18 apples then 20", "#### 18", "gsm8k", False, None),         # neither
    ("#### 1,000", "#### 1000", "gsm8k", True, 10),
    ("It is very good.", "Good", "label", True, 15),
    ("Bad", "Good", "label", False, None),
    ("the answer is Paris, France", "paris; Paris, France", "nq-open", True, 19),
    ("", TARGET, "regex", False, None),
    ("abc", "", "exact", False, None),  # an empty target is never "contained"
])
def test_contains_rules(prediction, reference, metric, expected, end):
    assert contains(prediction, reference, metric) == (expected, end)


def test_choice_tasks_get_no_termination_diagnostics():
    metrics, rows = score(["A"], [Example("q", "A")], get_task("hellaswag"), progress=False)
    assert "contains_target" not in metrics and "contains_target" not in rows[0]


def test_stop_reason_not_recorded_is_left_out_not_guessed():
    rows = [{"contains_target": True, "exact_if_truncated": True, "extra_tokens": 0, "stopped": True},
            {"contains_target": False, "exact_if_truncated": False, "extra_tokens": None}]
    out = summarize(rows)
    assert "stopped" not in out and "not recorded" in out["stopped_note"]
    assert out["mean_extra_tokens"] == 0 and out["n_extra_tokens"] == 1


def test_rescore_keeps_recorded_stop_flags_and_adds_the_diagnostics(tmp_path, tokenizer):
    recorded = [{"prediction": TARGET + " x", "reference": TARGET, "stopped": False},
                {"prediction": TARGET, "reference": TARGET, "stopped": True}]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recorded))
    metrics = rescore(tmp_path, get_task("nlrx-synth"), EvalConfig(), tokenizer=tokenizer)
    assert metrics["stopped"] == 50.0 and metrics["contains_target"] == 100.0
    assert metrics["mean_extra_tokens"] == pytest.approx(len(tokenizer(" x", add_special_tokens=False)["input_ids"]) / 2)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["stopped"] for r in rows] == [False, True]
    for row in recorded:  # an old file, written before the stop reason was recorded
        del row["stopped"]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recorded))
    metrics = rescore(tmp_path, get_task("nlrx-synth"), EvalConfig())
    assert "stopped" not in metrics and "stopped_note" in metrics and metrics["mean_extra_tokens"] is None


def _greedy(model, ids: list[int], steps: int, eos: int) -> list[int]:
    """Unbatched greedy decoding without a cache or generate(): the independent reference."""
    out = []
    for _ in range(steps):
        with torch.no_grad():
            logits = model(torch.tensor([ids + out])).logits[0, -1]
        out.append(int(logits.argmax()))
        if out[-1] == eos:
            break
    return out


def test_generate_records_whether_the_eos_token_ended_each_row(tokenizer):
    model = tiny_llama(len(tokenizer), seed=0).eval()  # rows 0, 1, 3 generate token 27537, row 2 does not
    examples = [Example(text=t, code="x") for t in ["dog", "a longer description of a regex", "cat or bird", "z"]]
    steps, eos_before = 6, tokenizer.eos_token_id
    free = [_greedy(model, prompt_ids(e, tokenizer), steps, eos_before) for e in examples]
    # make a token that some rows generate (and others do not) the eos token, so both outcomes occur
    counts = {t: sum(t in row for row in free) for row in free for t in row}
    token = next(t for t, c in counts.items() if 0 < c < len(examples))
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(token)
    expected = [token in row for row in free]
    _, stopped = generate(model, tokenizer, examples, steps, batch_size=3, progress=False, with_stops=True)
    assert stopped == expected  # rows padded after their eos, beside rows that ran to the budget
    texts, stopped = generate(model, tokenizer, examples, steps, batch_size=1, progress=False, with_stops=True)
    assert stopped == expected
    for text, row in zip(texts, free):  # unpadded: the same tokens as the reference loop
        cut = row[:row.index(token) + 1] if token in row else row  # nothing after the eos
        assert text == tokenizer.decode(cut, skip_special_tokens=True).strip()
    tokenizer.eos_token_id = eos_before


def test_split_delta_sums_to_the_change_and_matches_a_hand_computation():
    # the replication's pattern: the same share contains the target, exact match differs
    base, cell = {"exact_match": 50.0, "contains_target": 85.0}, {"exact_match": 70.0, "contains_target": 85.0}
    content, termination = split_delta(base, cell)
    assert content == pytest.approx(0.0) and termination == pytest.approx(20.0)
    base, cell = {"exact_match": 40.0, "contains_target": 50.0}, {"exact_match": 48.0, "contains_target": 60.0}
    content, termination = split_delta(base, cell)  # clean 80 → 80: all content
    assert (content, termination) == (pytest.approx(8.0), pytest.approx(0.0))
    base, cell = {"exact_match": 30.0, "contains_target": 60.0}, {"exact_match": 56.0, "contains_target": 70.0}
    content, termination = split_delta(base, cell)  # clean 50 → 80
    assert content == pytest.approx(10 * (50 + 80) / 200) and termination == pytest.approx(30 * (60 + 70) / 200)
    assert content + termination == pytest.approx(26.0)
    assert carried_by(0.0, 20.0) == "termination" and carried_by(9.0, 17.0) == "both" and carried_by(6.5, 19.5) == "termination"
    assert carried_by(0.01, -0.02) == "neither" and carried_by(8.0, 0.5) == "content"


def test_compare_reports_one_line_per_cell_and_tests_the_diagnostics():
    rows = []
    for seed, (e0, c0, e1, c1) in zip([82, 23, 37], [(50, 85, 70, 85), (56, 84, 70, 85), (59, 85, 71, 85)]):
        rows.append({"cell": "ntp", "seed": seed, "metrics": {"exact_match": e0, "contains_target": c0, "stopped": 60}})
        rows.append({"cell": "llm-jepa", "seed": seed, "metrics": {"exact_match": e1, "contains_target": c1,
                                                                    "stopped": 90}})
    result = compare(rows, "ntp", ["exact_match", "contains_target", "stopped"])
    assert result["family_size"] == 3
    d = result["termination"]["llm-jepa"]
    expected = [sum(split_delta({"exact_match": a, "contains_target": b}, {"exact_match": c, "contains_target": e}))
                for a, b, c, e in [(50, 85, 70, 85), (56, 84, 70, 85), (59, 85, 71, 85)]]
    assert d["content"] + d["termination"] == pytest.approx(sum(expected) / 3) == pytest.approx(d["delta_exact"])
    assert d["carried_by"] == "termination" and d["delta_stopped"] == pytest.approx(30.0)
    report = render_markdown(result)
    assert "**llm-jepa**" in report and "carried by **termination**" in report


def test_end_of_turn_probability_matches_unpadded_forwards_of_the_full_render(tokenizer):
    from lmjepa.evaluation.generate import end_of_turn_probability

    model = tiny_llama(len(tokenizer), seed=3).eval()
    examples = [Example("lines with dog", ".*dog.*", "Convert."), Example("three digits", "[0-9]{3}", "Convert."),
                Example("a vowel then anything at all", "([AEIOUaeiou]).*", None)]
    got = end_of_turn_probability(model, tokenizer, examples, batch_size=2)  # a padded batch and a lone row
    eos = tokenizer.eos_token_id
    for example, (p, greedy) in zip(examples, got):
        # independent: the tokenised full render; the end-of-turn token that closes the answer is the last eos
        full = tokenizer.apply_chat_template(example.messages(with_answer=True), tokenize=True)
        full = list(full["input_ids"] if hasattr(full, "keys") else full)
        at = max(i for i, t in enumerate(full) if t == eos)
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([full[:at]])).logits[0, -1], dim=-1)
        assert p == pytest.approx(probs[eos].item(), rel=1e-4, abs=1e-7)
        assert greedy == (probs.argmax().item() == eos)
    assert len({round(p, 8) for p, _ in got}) == 3  # the rows differ: nothing constant is returned


def test_ending_classes_and_their_agreement_with_contains():
    from lmjepa.evaluation.diagnostics import ENDINGS, contains, ending

    assert ending("  a.*b \n", "a.*b") == "exact"
    assert ending("a.*b\n(x)", "a.*b") == "target, then a line break"
    assert ending("a.*b.*.*", " a.*b") == "target, then more on its line"
    assert ending("x a.*b", "a.*b") == "target elsewhere"
    assert ending("x", "a.*b") == ending("x", "  ") == "no target"
    rng = random.Random(0)
    for _ in range(2000):  # the first four classes are exactly the rows `contains` finds (regex rule)
        target = "".join(rng.choice("ab.*\n ") for _ in range(rng.randint(0, 3)))
        prediction = "".join(rng.choice("ab.*\n ") for _ in range(rng.randint(0, 6)))
        found = contains(prediction, target, "regex")[0]
        assert (ending(prediction, target) != ENDINGS[-1]) == found, (prediction, target)


def test_ending_shares_and_their_table(tmp_path):
    from conftest import factorial_store
    from scipy import stats

    from lmjepa.analysis.endings import ending_shares, plot_endings, render_endings
    from lmjepa.analysis.factorial import Design, load, run_predictions

    factorial_store(tmp_path, seeds=(1, 2, 3))
    design = Design("ntp", "llm-jepa", "ntp-official", "llm-jepa-official")
    rows = load(tmp_path / "results.jsonl")[1]
    shares = ending_shares(run_predictions(design, tmp_path, rows, [1, 2, 3]))
    for cell in design.cells:
        for seed in (1, 2, 3):
            recorded = next(r["metrics"] for r in rows if r["cell"] == cell and r["seed"] == seed)
            assert sum(shares[cell][seed].values()) == pytest.approx(100.0)
            assert shares[cell][seed]["exact"] == pytest.approx(recorded["exact_match"])
    lines = render_endings(design, shares, [1, 2, 3])
    exact = {c: [shares[c][s]["exact"] for s in (1, 2, 3)] for c in design.cells}
    delta = [b - a for a, b in zip(exact["ntp-official"], exact["llm-jepa-official"])]
    assert lines[2].startswith(f"| exact | {sum(exact['ntp']) / 3:.1f} ± ")
    assert lines[2].endswith(f"{sum(delta) / 3:+.1f} pp [{sum(delta) / 3 - stats.t.ppf(0.975, 2) * stats.tstd(delta) / 3 ** 0.5:+.1f},"
                             f" {sum(delta) / 3 + stats.t.ppf(0.975, 2) * stats.tstd(delta) / 3 ** 0.5:+.1f}], "
                             f"p = {stats.ttest_1samp(delta, 0).pvalue:.4f} |")
    assert len(lines) == 2 + 5
    widths = plot_endings(design, shares, [1, 2, 3], tmp_path / "endings.png")
    assert (tmp_path / "endings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert widths.sum(axis=1) == pytest.approx([100.0] * 4)
    assert widths[:, 0] == pytest.approx([sum(exact[c]) / 3 for c in design.cells])  # the first segment is exact
