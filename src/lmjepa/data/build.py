"""``lmjepa build-data NAME``: build LLM-JEPA-format training files from raw datasets.

    lmjepa build-data gsm8k [--data-dir DIR] [--out FILE]

``gsm8k`` reads ``<data_dir>/gsm8k/train.jsonl`` (fields ``question``, ``answer``; 7,473 rows)
and writes ``{"messages": [system, user, assistant]}`` rows with system "Answer the math
question, show steps.", user = question, assistant = answer (reasoning, then ``#### N``) — the
format of ``llm-jepa/gsm8k_test.jsonl``. The default output is
``$LMJEPA_CACHE_DIR/data/llm-jepa/gsm8k_train.jsonl`` (``~/.cache/lmjepa/...``), where the
``gsm8k`` task looks for its training file when the data folder has none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_jsonl
from ..paths import cache_dir
from .jsonl import DataError, data_dir, iter_jsonl

GSM8K_SYSTEM = "Answer the math question, show steps."


def gsm8k_rows(source: Path) -> list[dict]:
    """LLM-JEPA rows from GSM8K's ``train.jsonl``. Raises DataError naming ``file:line`` on a bad row."""
    rows = []
    for where, record in iter_jsonl(source, "GSM8K file"):
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: missing or empty 'question'")
        if not isinstance(answer, str) or "####" not in answer:
            raise DataError(f"{where}: 'answer' must be a string ending in '#### N'")
        rows.append({"messages": [{"role": "system", "content": GSM8K_SYSTEM},
                                  {"role": "user", "content": question},
                                  {"role": "assistant", "content": answer}]})
    return rows


BUILDERS: dict[str, tuple[str, str, Callable[[Path], list[dict]]]] = {
    # name: (raw file under data_dir, output path relative to the data root, builder)
    "gsm8k": ("gsm8k/train.jsonl", "llm-jepa/gsm8k_train.jsonl", gsm8k_rows),
}


def build(name: str, folder: str | None = None, out: str | Path | None = None) -> tuple[Path, int]:
    """Build training file ``name``; return (path written, rows). Raises ConfigError for an unknown name."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown build {name!r}; known: {sorted(BUILDERS)}")
    raw, relative, builder = BUILDERS[name]
    rows = builder(data_dir(folder) / raw)
    target = Path(out) if out else cache_dir() / "data" / relative
    atomic_write_jsonl(target, rows)
    return target, len(rows)
