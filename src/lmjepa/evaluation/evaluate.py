"""Score generations; write ``predictions.jsonl`` (atomically). ``metrics.json`` is written by the caller.

Metrics (percentages are in percent of ``n``):
* ``exact_match``: prediction == reference after stripping whitespace (the LLM-JEPA metric).
* ``semantic_match`` (metric ``regex``): DFA equivalence in the NL-RX dialect
  (``lmjepa.evaluation.regex``); pairs that exceed the time limit are ``undecided`` and count as
  wrong. Because some NL-RX targets denote the empty language or every string, the metrics also
  give ``degenerate_targets`` and ``semantic_match_nondegenerate`` (over the other targets).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from ..data.jsonl import Example
from ..io import atomic_write_jsonl
from . import regex

METRICS = ("regex", "exact")


def _percent(count: int, total: int) -> float:
    return 100.0 * count / total if total else 0.0


def score(
    predictions: list[str], references: list[str], metric: str = "regex", timeout_s: float = 5.0, progress: bool = True
) -> tuple[dict, list[dict]]:
    """Score predictions against references.

    Returns ``(metrics, rows)``; ``rows[i]`` holds the per-example verdicts.
    Raises ValueError on an unknown metric or lists of different lengths.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    rows, counts = [], {"exact": 0, "semantic": 0, "undecided": 0, "semantic_nondeg": 0, "nondeg": 0}
    languages = {"empty": 0, "all": 0, "invalid": 0, "undecided": 0}
    pairs = zip(predictions, references)
    for prediction, reference in tqdm(pairs, total=len(references), desc="score", disable=not progress):
        exact = prediction.strip() == reference.strip()
        row = {"prediction": prediction, "reference": reference, "exact_match": exact}
        counts["exact"] += exact
        if metric == "regex":
            verdict = regex.equivalent(prediction, reference, timeout_s=timeout_s)
            language = regex.target_language(reference, timeout_s)
            row.update(semantic_match=verdict, target_language=language)
            counts["semantic"] += verdict is True
            counts["undecided"] += verdict is None
            if language == "regular":
                counts["nondeg"] += 1
                counts["semantic_nondeg"] += verdict is True
            else:
                languages[language] += 1
        rows.append(row)
    n = len(references)
    metrics = {"n": n, "exact_match": _percent(counts["exact"], n)}
    if metric == "regex":
        metrics.update(
            semantic_match=_percent(counts["semantic"], n),
            undecided=counts["undecided"],
            degenerate_targets={"empty_language": languages["empty"], "all_strings": languages["all"],
                                "unparsable": languages["invalid"], "undecided": languages["undecided"]},
            n_nondegenerate=counts["nondeg"],
            semantic_match_nondegenerate=_percent(counts["semantic_nondeg"], counts["nondeg"]),
        )
    return metrics, rows


def evaluate_examples(model, tokenizer, examples: list[Example], eval_config, out_dir: str | Path) -> dict:
    """Generate for ``examples``, score, and write ``predictions.jsonl`` (atomically) into ``out_dir``.

    Returns the metrics dict; the caller adds run details and writes ``metrics.json``.
    ``eval_config`` is an ``EvalConfig``.
    """
    from .generate import generate

    out_dir = Path(out_dir)
    start = time.perf_counter()
    predictions = generate(model, tokenizer, examples, eval_config.max_new_tokens, eval_config.batch_size)
    generate_s = time.perf_counter() - start
    metrics, rows = score(predictions, [e.code for e in examples], eval_config.metric, eval_config.regex_timeout_s)
    for row, example in zip(rows, examples):
        row.update(source=example.source, text=example.text)
    metrics["generate_seconds"] = round(generate_s, 1)
    metrics["eval_seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_jsonl(out_dir / "predictions.jsonl", rows)
    return metrics
