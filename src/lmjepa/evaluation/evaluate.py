"""Evaluate a model on a task: generate (or choose), score with the task's metric, and write
``predictions.jsonl`` (atomically). ``metrics.json`` is written by the caller.

Every task reports ``n`` and ``exact_match`` (in percent) besides its own metric (see
``tasks.METRICS``), so any two runs can be compared on the same footing:
* ``regex``: ``semantic_match`` = DFA equivalence in the NL-RX dialect (``regex.py``); pairs over
  the time limit are ``undecided`` and count as wrong. Because some NL-RX targets denote the empty
  language or every string, it also gives ``degenerate_targets`` and ``semantic_match_nondegenerate``;
* ``spider``: execution match / exact-SQL fallback, with the count of each (``sql.py``);
* ``gsm8k``, ``nq-open``, ``label`` and registered checks: the percentage of examples whose check
  passes (``metrics.py``); ``label`` also counts generations that are no known label (``invalid``);
  ``gsm8k`` adds two diagnostics, in percent: ``answer_marker_rate`` (predictions with ``#### N``)
  and ``last_number_match`` (lenient: the last number in the text is the gold answer).

Every generation task also reports why a prediction missed (``diagnostics.py``): ``contains_target``,
``stopped``, ``exact_if_truncated`` (and ``semantic_if_truncated`` for regex tasks), in percent, and
``mean_extra_tokens`` — content (the target never written) vs termination (written, then not stopped).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from ..data.jsonl import Example
from ..io import atomic_write_jsonl
from ..training.run_folder import PARTIAL_GENERATIONS
from . import regex
from .metrics import normalize_label
from .tasks import METRICS, Task


def _percent(count: int, total: int) -> float:
    return 100.0 * count / total if total else 0.0


def score_regex(predictions: list[str], references: list[str], timeout_s: float = 5.0,
                progress: bool = True) -> tuple[dict, list[dict]]:
    """Semantic (DFA-equivalence) match of NL-RX regexes, plus degenerate-target counts."""
    rows, counts = [], {"semantic": 0, "undecided": 0, "semantic_nondeg": 0, "nondeg": 0}
    languages = {"empty": 0, "all": 0, "invalid": 0, "undecided": 0}
    pairs = zip(predictions, references)
    for prediction, reference in tqdm(pairs, total=len(references), desc="score", disable=not progress):
        verdict = regex.equivalent(prediction, reference, timeout_s=timeout_s)
        language = regex.target_language(reference, timeout_s)
        rows.append({"semantic_match": verdict, "target_language": language})
        counts["semantic"] += verdict is True
        counts["undecided"] += verdict is None
        if language == "regular":
            counts["nondeg"] += 1
            counts["semantic_nondeg"] += verdict is True
        else:
            languages[language] += 1
    metrics = {
        "semantic_match": _percent(counts["semantic"], len(references)),
        "undecided": counts["undecided"],
        "degenerate_targets": {"empty_language": languages["empty"], "all_strings": languages["all"],
                               "unparsable": languages["invalid"], "undecided": languages["undecided"]},
        "n_nondegenerate": counts["nondeg"],
        "semantic_match_nondegenerate": _percent(counts["semantic_nondeg"], counts["nondeg"]),
    }
    return metrics, rows


def score(predictions: list[str], examples: list[Example], task: Task, *, data_dir: str | Path | None = None,
          regex_timeout_s: float = 5.0, sql_timeout_s: float = 10.0, progress: bool = True,
          stopped: list[bool | None] | None = None, count_tokens=None) -> tuple[dict, list[dict]]:
    """Score predictions against the examples' Code views with ``task.metric``.

    Returns ``(metrics, rows)``; ``rows[i]`` holds example i's prediction, reference, verdicts,
    source and text. ``data_dir`` is needed for Spider's databases (``<data_dir>/spider/database``).
    Generation tasks (no ``task.choices``) also get the content-vs-termination diagnostics of
    ``diagnostics.py``: ``stopped[i]`` is whether generation i ended with the eos token (None or
    absent: not recorded, and ``stopped`` is left out), ``count_tokens(text) -> int`` counts the
    tokens after the target (None: no ``mean_extra_tokens``).
    Raises ValueError on lists of different lengths or an unknown metric.
    """
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} references")
    if task.metric not in METRICS:
        raise ValueError(f"unknown metric {task.metric!r}; known: {sorted(METRICS)}")
    references = [e.code for e in examples]
    exact = [p.strip() == r.strip() for p, r in zip(predictions, references)]
    rows = [{"prediction": p, "reference": r, "exact_match": e} for p, r, e in zip(predictions, references, exact)]
    metrics = {"n": len(rows), "exact_match": _percent(sum(exact), len(rows))}
    key, check = METRICS[task.metric]
    if task.metric == "regex":
        extra, verdicts = score_regex(predictions, references, regex_timeout_s, progress)
    elif task.metric == "spider":
        from .sql import score_spider

        spider_dir = Path(data_dir) / "spider" if data_dir else None
        extra, verdicts = score_spider(predictions, references, [e.text for e in examples], spider_dir, sql_timeout_s)
        extra["note"] = (f"execution match on {extra['n_execution']} examples (databases: "
                         f"{', '.join(extra['databases_found']) or 'none'}); normalised exact SQL on "
                         f"{extra['n_exact_fallback']} whose database is not available")
    else:
        passed = [check(p, r) for p, r in zip(predictions, references)]
        extra, verdicts = {key: _percent(sum(passed), len(passed))}, [{key: v} for v in passed]
        if task.metric == "gsm8k":  # diagnostics: is a low score the answer format or the arithmetic?
            from .metrics import gsm8k_last_number_match, has_gsm8k_answer

            extra["answer_marker_rate"] = _percent(sum(map(has_gsm8k_answer, predictions)), len(predictions))
            lenient = [gsm8k_last_number_match(p, r) for p, r in zip(predictions, references)]
            extra["last_number_match"] = _percent(sum(lenient), len(lenient))
            for verdict, value in zip(verdicts, lenient):
                verdict["last_number_match"] = value
        if task.metric == "label":
            labels = {normalize_label(r) for r in references}
            extra["invalid"] = sum(normalize_label(p) not in labels for p in predictions)
    for row, verdict, example in zip(rows, verdicts, examples):
        row.update(verdict, source=example.source, text=example.text)
    metrics.update(extra)
    if not task.choices:
        metrics.update(_termination(predictions, references, rows, task, stopped, count_tokens, regex_timeout_s))
    return metrics, rows


def _termination(predictions, references, rows, task, stopped, count_tokens, timeout_s) -> dict:
    """Add the per-row content/termination flags to ``rows`` and return their aggregates."""
    from .diagnostics import summarize, termination_rows, truncate_at_line_break

    if stopped is not None and len(stopped) != len(rows):
        raise ValueError(f"{len(stopped)} stop flags for {len(rows)} predictions")
    for i, (row, flags) in enumerate(zip(rows, termination_rows(predictions, references, task.metric, count_tokens))):
        row.update(flags)
        if stopped is not None and stopped[i] is not None:
            row["stopped"] = bool(stopped[i])
        if task.metric == "regex":  # the semantic verdict of the cut prediction (re-decided only if the cut changed it)
            cut = truncate_at_line_break(predictions[i])
            row["semantic_if_truncated"] = (row["semantic_match"] if cut == predictions[i].strip()
                                            else regex.equivalent(cut, references[i], timeout_s=timeout_s))
    return summarize(rows)


def evaluate_examples(model, tokenizer, examples: list[Example], task: Task, eval_config, out_dir: str | Path,
                      data_dir: str | Path | None = None, model_dir: str | Path | None = None) -> dict:
    """Generate (or choose, for multiple-choice tasks) for ``examples``, score with ``task``'s metric,
    and write ``predictions.jsonl`` (atomically) into ``out_dir``.

    Returns the metrics dict (plus ``task``, ``metric``, wall times); the caller adds run details and
    writes ``metrics.json``. ``eval_config`` is an ``EvalConfig``; with ``backend: vllm`` generation
    goes through vLLM on ``model_dir`` (the model's folder), greedy, with the same prompts.

    Generation with the default backend, and multiple choice, are resumable: each finished batch goes to
    ``out_dir/generations.partial.jsonl`` (``GenerationLog``), which an evaluation killed and started again
    reuses, and which is removed once ``predictions.jsonl`` is written. ``generate_seconds`` and
    ``eval_seconds`` then count the reused batches' recorded seconds too, and ``generation_batches_reused``
    says how many there were. vLLM starts afresh.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    budget = eval_config.max_new_tokens or task.max_new_tokens
    log = None  # the GenerationLog, for every path but vLLM
    if task.choices or getattr(eval_config, "backend", "hf") != "vllm":
        from .generate import GenerationLog

        out_dir.mkdir(parents=True, exist_ok=True)
        log = GenerationLog(out_dir / PARTIAL_GENERATIONS, model, tokenizer, None if task.choices else budget,
                            choices=task.choices or None)
    if task.choices:
        from .choice import choose

        predictions = choose(model, tokenizer, examples, task.choices, eval_config.batch_size, log=log)
    elif log is None:
        from .vllm_backend import generate_vllm

        predictions, stopped = generate_vllm(str(model_dir), tokenizer, examples, budget)
    else:
        from .generate import generate

        predictions, stopped = generate(model, tokenizer, examples, budget, eval_config.batch_size,
                                        with_stops=True, log=log)
    reused_s = log.reused_seconds if log else 0.0  # what the batches reused from a killed evaluation took
    generate_s = time.perf_counter() - start + reused_s
    metrics, rows = score(predictions, examples, task, data_dir=data_dir, regex_timeout_s=eval_config.regex_timeout_s,
                          sql_timeout_s=eval_config.sql_timeout_s, stopped=None if task.choices else stopped,
                          count_tokens=token_counter(tokenizer))
    metrics = {"task": task.name, "metric": task.metric, **metrics}
    if not task.choices:
        metrics["max_new_tokens"] = budget
        if model is not None and all(example.code for example in examples):
            metrics.update(_end_of_turn(model, tokenizer, examples, rows, eval_config.batch_size))
    metrics["generate_seconds"] = round(generate_s, 1)
    if log is not None and log.reused_batches:
        metrics["generation_batches_reused"] = log.reused_batches
    metrics["eval_seconds"] = round(time.perf_counter() - start + reused_s, 1)
    atomic_write_jsonl(out_dir / "predictions.jsonl", rows)
    if log is not None:
        log.path.unlink(missing_ok=True)
    return metrics


def _end_of_turn(model, tokenizer, examples, rows, batch_size) -> dict:
    """Teacher-forced p(end-of-turn) right after the gold answer (``generate.end_of_turn_probability``): per row
    ``p_end_of_turn`` (probability) and ``end_of_turn_greedy``; aggregates ``p_end_of_turn`` (mean probability,
    in [0, 1]) and ``end_of_turn_greedy`` (percent of rows where it is the greedy next token)."""
    from .generate import end_of_turn_probability

    values = end_of_turn_probability(model, tokenizer, examples, batch_size)
    for row, (p, greedy) in zip(rows, values):
        row["p_end_of_turn"], row["end_of_turn_greedy"] = round(p, 6), greedy
    return {"p_end_of_turn": round(sum(p for p, _ in values) / len(values), 6),
            "end_of_turn_greedy": _percent(sum(g for _, g in values), len(values))}


def token_counter(tokenizer):
    """``count(text) -> int``: the number of tokens ``tokenizer`` gives ``text`` (no special tokens)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


def rescore(out_dir: str | Path, task: Task, eval_config, data_dir: str | Path | None = None,
            tokenizer=None) -> dict:
    """Score an existing ``out_dir/predictions.jsonl`` again with ``task``'s metric, without generating.

    For a metric fixed or added after the predictions were made. Rewrites ``predictions.jsonl``
    with the new verdicts (atomically) and returns the metrics (plus ``task``, ``metric``,
    ``rescore_seconds``). The content/termination diagnostics are computed too: each row's recorded
    ``stopped`` flag is kept (rows made before it was recorded have none, and ``stopped`` is then left
    out, not guessed); ``tokenizer`` counts ``mean_extra_tokens`` (None: left out). Raises DataError
    (naming file and line) on a missing file or a row without ``prediction``/``reference``.
    """
    from ..data.jsonl import DataError, iter_jsonl

    path = Path(out_dir) / "predictions.jsonl"
    records = list(iter_jsonl(path, "predictions file"))
    for where, record in records:
        if not isinstance(record.get("prediction"), str) or not isinstance(record.get("reference"), str):
            raise DataError(f"{where}: a predictions row needs string 'prediction' and 'reference'")
    start = time.perf_counter()
    examples = [Example(text=r.get("text", ""), code=r["reference"], source=r.get("source", w)) for w, r in records]
    metrics, rows = score([r["prediction"] for _, r in records], examples, task, data_dir=data_dir,
                          regex_timeout_s=eval_config.regex_timeout_s, sql_timeout_s=eval_config.sql_timeout_s,
                          stopped=[r.get("stopped") for _, r in records],
                          count_tokens=token_counter(tokenizer) if tokenizer is not None else None)
    atomic_write_jsonl(path, rows)
    return {"task": task.name, "metric": task.metric, **metrics, "rescore_seconds": round(time.perf_counter() - start, 1)}
