"""Content vs termination: why did exact match move?

A generation can miss the exact target in two ways: it never writes the target (content), or it
writes it and then goes on, or never stops (termination). An independent replication of the
official LLM-JEPA code found the share of predictions that *contain* the target equal for NTP and
LLM-JEPA (0.85) while exact match differed by 14–20 pp — in that code the end-of-turn token is not
trained. These diagnostics tell the two apart for every generation task (issue 18).

Per row (``predictions.jsonl``):

* ``contains_target`` — the target occurs in the prediction, by the task's rule (``contains``):
  ``regex``/``exact``/default: the stripped target is a substring of the stripped prediction;
  ``label``: the normalised label (``metrics.normalize_label``) is a substring of the lower-cased
  prediction; ``spider``: the normalised gold SQL is a substring of the normalised prediction;
  ``gsm8k``: the gold number follows some ``####`` or is the last number of the text;
  ``nq-open``: ``metrics.nq_open_match`` (already a containment rule). An exact match always
  contains its target.
* ``exact_if_truncated`` — exact match after cutting the prediction at its first line break (what
  the official evaluation effectively scores); regex tasks add ``semantic_if_truncated``.
* ``extra_tokens`` — tokens the tokenizer gives the text after the target's first end, for rows that
  contain the target where its end can be located in the raw text (None otherwise).
* ``stopped`` — written by generation: the end-of-turn / EOS token was generated within the budget.
* ``ending`` (computed from ``predictions.jsonl``, not stored) — one of ``ENDINGS``: exact; the target, then
  a line break; the target, then more on its line; the target elsewhere; no target.

Aggregates (``metrics.json``, in percent unless stated): ``contains_target``, ``exact_if_truncated``,
``semantic_if_truncated`` (regex), ``stopped`` (only when every row recorded it),
``mean_extra_tokens`` (tokens, mean over the ``n_extra_tokens`` rows that contain a located target).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from . import metrics as m

# (contains, end): whether the prediction contains the target, and where the target's first
# occurrence ends in the prediction (None when it cannot be located in the raw text).
Containment = tuple[bool, int | None]


def _substring(prediction: str, reference: str) -> Containment:
    target = reference.strip()
    if not target:
        return False, None
    index = prediction.find(target)
    return (index >= 0), (index + len(target) if index >= 0 else None)


def _label(prediction: str, reference: str) -> Containment:
    target = m.normalize_label(reference)
    index = prediction.lower().find(target) if target else -1
    return (index >= 0), (index + len(target) if index >= 0 else None)


def _gsm8k(prediction: str, reference: str) -> Containment:
    """The gold number right after some ``####``, or as the last number in the text."""
    gold = m.gsm8k_final_answer(reference)
    if gold is None or m.normalize_number(gold) is None:
        return False, None
    text = m._ascii_minus(prediction)  # same length: one character for one
    for marker in re.finditer("####", text):
        found = m._NUMBER.search(text, marker.end())
        if found and not text[marker.end():found.start()].strip() and m._same_number(gold, found.group(0)):
            return True, found.end()
    numbers = list(m._NUMBER.finditer(text))
    if numbers and m._same_number(gold, numbers[-1].group(0)):
        return True, numbers[-1].end()
    return False, None


def _spider(prediction: str, reference: str) -> Containment:
    from .sql import normalized_sql

    target = normalized_sql(reference)
    return bool(target) and target in normalized_sql(prediction), None


def _nq_open(prediction: str, reference: str) -> Containment:
    if not m.nq_open_match(prediction, reference):
        return False, None
    lowered = prediction.lower()
    ends = [lowered.find(gold.strip().lower()) + len(gold.strip()) for gold in reference.split("; ")
            if gold.strip() and gold.strip().lower() in lowered]
    return True, (min(ends) if ends else None)


CONTAINS: dict[str, Callable[[str, str], Containment]] = {
    "regex": _substring, "exact": _substring, "label": _label, "gsm8k": _gsm8k, "spider": _spider,
    "nq-open": _nq_open,
}


def contains(prediction: str, reference: str, metric: str) -> Containment:
    """``(contains_target, end)`` of one prediction under ``metric``'s rule (module docstring).

    Metrics without a rule of their own use the stripped-substring rule. An exact match (stripped
    equality) always counts as containing the target, with ``end`` at the prediction's end.
    """
    prediction = prediction.strip()
    if prediction == reference.strip() and prediction:
        return True, len(prediction)
    return CONTAINS.get(metric, _substring)(prediction, reference)


ENDINGS = ("exact", "target, then a line break", "target, then more on its line", "target elsewhere", "no target")


def ending(prediction: str, reference: str) -> str:
    """How a generation ends relative to its target, one of ``ENDINGS`` (stripped strings, substring rule):
    ``exact`` (equal); the prediction starts with the target and goes on after a line break, or on the same
    line; it contains the target elsewhere; or it does not contain it. The first four partition the rows that
    contain the target by the ``regex``/``exact`` rule of ``contains``."""
    prediction, target = prediction.strip(), reference.strip()
    if not target:  # as ``contains``: an empty target is never found
        return ENDINGS[4]
    if prediction == target:
        return ENDINGS[0]
    if prediction.startswith(target):
        return ENDINGS[1] if prediction[len(target)] == "\n" else ENDINGS[2]
    return ENDINGS[3] if target in prediction else ENDINGS[4]


def truncate_at_line_break(prediction: str) -> str:
    """The prediction up to its first line break, stripped (the official evaluation's effective rule)."""
    return prediction.strip().split("\n", 1)[0].strip()


def termination_rows(predictions: list[str], references: list[str], metric: str,
                     count_tokens: Callable[[str], int] | None = None) -> list[dict]:
    """Per-row ``contains_target``, ``exact_if_truncated`` and ``extra_tokens`` (see module docstring).

    ``count_tokens(text) -> int`` counts the tokens after the target's end (None: no ``extra_tokens``).
    Raises ValueError on lists of different lengths.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    rows = []
    for prediction, reference in zip(predictions, references):
        found, end = contains(prediction, reference, metric)
        stripped = prediction.strip()
        extra = count_tokens(stripped[end:]) if (found and end is not None and count_tokens) else None
        rows.append({"contains_target": found,
                     "exact_if_truncated": truncate_at_line_break(prediction) == reference.strip(),
                     "extra_tokens": extra})
    return rows


def _percent(flags: list[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


def summarize(rows: list[dict]) -> dict:
    """Aggregate per-row diagnostics (``rows`` as in ``predictions.jsonl``) into ``metrics.json`` keys.

    ``stopped`` is reported only when every row recorded it; otherwise ``stopped_note`` says why it
    is absent (runs scored before the stop reason was recorded). ``mean_extra_tokens`` is None when
    no row has ``extra_tokens``.
    """
    out = {"contains_target": _percent([r["contains_target"] for r in rows]),
           "exact_if_truncated": _percent([r["exact_if_truncated"] for r in rows])}
    if rows and all("semantic_if_truncated" in r for r in rows):
        out["semantic_if_truncated"] = _percent([r["semantic_if_truncated"] is True for r in rows])
    if rows and all(isinstance(r.get("stopped"), bool) for r in rows):
        out["stopped"] = _percent([r["stopped"] for r in rows])
    else:
        out["stopped_note"] = "stop reason not recorded for these predictions: 'stopped' left out"
    extra = [r["extra_tokens"] for r in rows if r.get("extra_tokens") is not None]
    out["mean_extra_tokens"] = sum(extra) / len(extra) if extra else None
    out["n_extra_tokens"] = len(extra)
    return out
