"""Per-example answer checks for the LLM-JEPA tasks, each written against a known bug of the
reference scorer (RESOURCES.md, "Pitfalls", item 5).

Every check is ``check(prediction: str, reference: str) -> bool``; ``lmjepa.evaluation.tasks``
turns them into percentages. Regex equivalence lives in ``regex.py``, SQL execution in ``sql.py``.
"""

from __future__ import annotations

import re
import string
import unicodedata
from decimal import Decimal, InvalidOperation


def exact_match(prediction: str, reference: str) -> bool:
    """String equality after stripping surrounding whitespace (the LLM-JEPA metric)."""
    return prediction.strip() == reference.strip()


def prefix_match(prediction: str, reference: str) -> bool:
    """The stripped generation starts with the stripped target (LLM-JEPA §4.1, pretraining from scratch:
    a small model that never learned to stop is credited for a correct beginning). An empty target
    never matches (it would credit every generation); a target longer than the generation does not."""
    target = reference.strip()
    return bool(target) and prediction.strip().startswith(target)


# --- GSM8K -----------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?\$?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)")


def gsm8k_final_answer(text: str) -> str | None:
    """The text after the last ``####`` (GSM8K's answer marker), stripped; None if there is none."""
    if "####" not in text:
        return None
    answer = text.rsplit("####", 1)[1].strip()
    return answer.splitlines()[0].strip() if answer else ""


def _ascii_minus(text: str) -> str:
    """The Unicode minus ``−`` and en dash ``–`` as ``-``."""
    return text.replace("\u2212", "-").replace("\u2013", "-")


def normalize_number(text: str) -> Decimal | None:
    """Read the first number in ``text``: drops thousands commas, ``$``, a ``+`` sign, trailing
    zeros (``18.00`` = ``18``); the Unicode minus ``−`` counts as ``-``. None if there is no number.
    """
    found = _NUMBER.search(_ascii_minus(text))
    if not found:
        return None
    digits = found.group(0).replace("$", "").replace(",", "").replace(" ", "")
    try:
        return Decimal(digits).normalize()
    except InvalidOperation:
        return None


def _same_number(gold: str, answer: str) -> bool:
    """Both texts hold a number (``normalize_number``) and the numbers are equal."""
    gold_value, value = normalize_number(gold), normalize_number(answer)
    return gold_value is not None and value is not None and gold_value == value


def gsm8k_match(prediction: str, reference: str) -> bool:
    """Numeric equality of the final answers after ``####`` (``1,000`` = ``1000`` = ``1000.0``).

    A prediction without ``####`` or without a number there is wrong: the answer must be stated
    the way training taught it, not guessed from the last number in the reasoning.
    """
    gold, answer = gsm8k_final_answer(reference), gsm8k_final_answer(prediction)
    return gold is not None and answer is not None and _same_number(gold, answer)


def gsm8k_last_number_match(prediction: str, reference: str) -> bool:
    """Secondary, lenient GSM8K check: the *last* number anywhere in the prediction equals the gold
    answer after ``####``. Reported beside ``gsm8k_match`` as a diagnostic (a model that reasons
    right but never writes ``####`` scores here only); it is not the LLM-JEPA metric.
    """
    gold, numbers = gsm8k_final_answer(reference), _NUMBER.findall(_ascii_minus(prediction))
    return gold is not None and bool(numbers) and _same_number(gold, numbers[-1])


def has_gsm8k_answer(prediction: str) -> bool:
    """Whether the prediction states a final answer the GSM8K way: ``####`` followed by a number."""
    answer = gsm8k_final_answer(prediction)
    return answer is not None and normalize_number(answer) is not None


# --- NQ-Open ----------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD/NQ normalisation: NFKC, lower case, punctuation and articles removed, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def nq_open_match(prediction: str, reference: str, separator: str = "; ") -> bool:
    """Correct when a normalised gold answer occurs in the normalised generation, on word boundaries.

    ``reference`` holds the gold answers joined by ``separator``. The test runs gold-in-prediction
    (the reference code tests prediction-in-gold, so an empty answer matched everything); an empty
    generation is never correct, and neither is a gold answer that normalises to nothing.
    """
    generated = normalize_answer(prediction)
    if not generated:
        return False
    padded = f" {generated} "
    for gold in reference.split(separator):
        gold = normalize_answer(gold)
        if gold and f" {gold} " in padded:
            return True
    return False


# --- classification by label ----------------------------------------------------------------------------


def normalize_label(text: str) -> str:
    """Lower case, outer whitespace and trailing punctuation removed (``"Good."`` → ``"good"``)."""
    return text.strip().rstrip(string.punctuation + " ").strip().lower()


def label_match(prediction: str, reference: str) -> bool:
    """The whole generation is the gold label after ``normalize_label`` (``Very Good`` ≠ ``Good``)."""
    return bool(normalize_label(prediction)) and normalize_label(prediction) == normalize_label(reference)
