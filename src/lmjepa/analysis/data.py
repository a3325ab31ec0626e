"""What ``lmjepa analyze`` embeds: two-view data (Text/Code) or labelled sentences.

``dataset`` is one of
* a task name (``lmjepa tasks``: ``nlrx-synth``, ``gsm8k``, …) or a path to a JSONL file in either form
  training reads (``{"messages": [...]}`` or ``{"text", "code"}`` rows) → two-view data, labels
  ``text``/``code``; tasks scored by
  ``label`` (``rotten-tomatoes``, ``yelp``) are read as labelled sentences instead (the user turn,
  labelled by the assistant turn);
* ``sst2`` (``<data_dir>/glue/SST-2/``: split ``validation``/``dev`` → ``dev.tsv``, the split the
  P&R paper measures; ``test`` → ``test-labeled.tsv``; ``train`` → ``train.tsv``);
* a path to a ``.tsv`` with ``sentence`` and ``label`` columns, or a ``.jsonl`` with ``text``
  and ``label`` fields → labelled sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.jsonl import DataError, Example, data_dir, iter_jsonl, read_examples, take
from ..data.tasks import find_task
from ..data.text import read_table
from ..training.config import LEGACY_DATASETS


@dataclass
class AnalysisData:
    """Either ``examples`` (two views) or ``texts`` + ``labels`` (one sentence per row)."""

    source: str
    examples: list[Example] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def two_view(self) -> bool:
        return bool(self.examples)

    def __len__(self) -> int:
        return len(self.examples) or len(self.texts)


def _read_tsv(path: Path, limit: int | None) -> tuple[list[str], list[str]]:
    rows = read_table(path)
    if rows and not {"sentence", "label"} <= set(rows[0]):
        raise DataError(f"{path}:1: expected a header with 'sentence' and 'label' columns")
    texts, labels = [], []
    for number, row in enumerate(rows[:limit], start=2):
        if not (row.get("sentence") or "").strip() or not (row.get("label") or "").strip():
            raise DataError(f"{path}:{number}: empty sentence or label")
        texts.append(row["sentence"].strip())
        labels.append(row["label"].strip())
    return texts, labels


def _read_labelled_jsonl(path: Path, limit: int | None) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for where, row in iter_jsonl(path):
        if limit is not None and len(texts) >= limit:
            break
        if not isinstance(row, dict) or not str(row.get("text", "")).strip() or row.get("label") is None:
            raise DataError(f"{where}: expected non-empty 'text' and a 'label'")
        texts.append(str(row["text"]))
        labels.append(str(row["label"]))
    return texts, labels


def load_analysis_data(dataset: str, split: str = "test", limit: int | None = 1000,
                       folder: str | None = None) -> AnalysisData:
    """Read up to ``limit`` rows of ``dataset`` (see the module docstring).

    Raises DataError naming the file (and line) if it is absent or malformed, or if a labelled
    set has fewer than two labels.
    """
    path = Path(dataset).expanduser()
    if dataset == "sst2":
        name = {"test": "test-labeled.tsv", "train": "train.tsv"}.get(split, "dev.tsv")
        path = data_dir(folder) / "glue" / "SST-2" / name
    elif not path.suffix:
        task = find_task(LEGACY_DATASETS.get(dataset, dataset))
        examples = take(read_examples(task.file(split, folder)), limit, task.subset)
        if task.metric == "label":
            return AnalysisData(task.name, texts=[e.text for e in examples], labels=[e.code for e in examples])
        return AnalysisData(task.name, examples=examples)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if path.suffix == ".tsv":
        texts, labels = _read_tsv(path, limit)
    else:
        first = next(iter_jsonl(path), (None, None))[1]  # a malformed first row raises DataError (path:line)
        if isinstance(first, dict) and ("messages" in first or "code" in first):  # either two-view training form
            return AnalysisData(str(path), examples=read_examples(path, limit))
        texts, labels = _read_labelled_jsonl(path, limit)
    if len(set(labels)) < 2:
        raise DataError(f"{path}: needs at least two distinct labels, found {sorted(set(labels))}")
    return AnalysisData(str(path), texts=texts, labels=labels)
