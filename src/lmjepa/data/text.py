"""Plain text for encoder pretraining (Predict and Reconstruct) and sentence(-pair) datasets for probes.

``read_texts(source)`` reads one text per row from
* ``.txt``: one text per non-empty line;
* ``.jsonl``: a ``text`` or ``question`` field, or the user turn of ``messages`` (assistant turns of
  classification data are labels, not text);
* ``.tsv``: every column named ``sentence``, ``sentence1``, ``sentence2``, ``#1 String``, ``#2 String``;
* ``offline-corpus``: the *training* splits under the data folder — SST-2 ``train_full``, MRPC
  train, STS-B train, rotten_tomatoes train, NQ-Open train questions, GSM8K train questions,
  NL-RX-Synth descriptions (≈ 120k texts). No probe evaluation split is included.
Errors name the file and line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .jsonl import DataError, data_dir, iter_jsonl

TEXT_COLUMNS = ("sentence", "sentence1", "sentence2", "#1 String", "#2 String")
OFFLINE_CORPUS = [
    "glue/SST-2/train_full.tsv", "glue/MRPC/msr_paraphrase_train.txt", "glue/STS-B/train.tsv",
    "llm-jepa/rotten_tomatoes_train.jsonl", "llm-jepa/nq_open_train.jsonl", "gsm8k/train.jsonl",
    "nl-rx/NL-RX-Synth/src.txt",
]


def read_table(path: Path) -> list[dict]:
    """Rows of a tab-separated file with a header (BOM-tolerant, no quoting). Raises DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = []
        for number, row in enumerate(reader, start=2):
            if None in row:  # more cells than header columns
                raise DataError(f"{path}:{number}: {len(row) - 1 + len(row[None])} cells for {len(reader.fieldnames)} columns")
            rows.append(row)
    return rows


def _jsonl_texts(path: Path) -> list[str]:
    texts = []
    for where, record in iter_jsonl(path, "text file"):
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            texts.append(record["text"])
        elif isinstance(record, dict) and isinstance(record.get("question"), str):
            texts.append(record["question"])
        elif isinstance(record, dict) and isinstance(record.get("messages"), list):
            texts += [m["content"] for m in record["messages"]  # the user turn (assistant turns are often labels)
                      if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)]
        else:
            raise DataError(f"{where}: expected a 'text', 'question' or 'messages' field")
    return texts


def read_texts(source: str, folder: str | None = None) -> list[str]:
    """Texts of ``source`` (see the module docstring), stripped, empty ones dropped.

    Raises DataError if the file is absent, malformed, or yields no text.
    """
    if source == "offline-corpus":
        root = data_dir(folder)
        return [t for relative in OFFLINE_CORPUS for t in read_texts(str(root / relative), folder)]
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: text file not found")
    if path.suffix == ".jsonl":
        texts = _jsonl_texts(path)
    elif path.suffix in (".tsv",) or path.name.startswith("msr_paraphrase"):
        rows = read_table(path)
        columns = [c for c in TEXT_COLUMNS if rows and c in rows[0]]
        if not columns:
            raise DataError(f"{path}:1: no text column (expected one of {TEXT_COLUMNS})")
        texts = [row[c] for row in rows for c in columns]
    else:
        texts = path.read_text(encoding="utf-8").splitlines()
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise DataError(f"{path}: no text")
    return texts
