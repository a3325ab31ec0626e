"""Multi-view data: ``{"views": ["...", "...", ...]}`` rows (n ≥ 2, ragged n allowed) — paraphrase groups
for LLM-JEPA pretraining (LLM-JEPA §4.1, Table 9: the i-th version predicts the (i+1)-th in embedding
space, plus NTP on the text). Config ``jepa.views: multiview``.

Each view is plain text (no chat template): its tokens, then the end-of-sequence token, NTP-trained;
views 1..n−1 that predict the next one also carry the k predictor tokens after it (never trained by
NTP). One row per view, so one forward gives every Enc (causal attention: the predictor tokens change
no earlier state, so each row computes exactly what its view alone would):

* Enc(view i) as a *target*: the hidden state at its last text token (before the end-of-sequence token);
* Pred(Enc(view i)) as a *source*: at its last predictor token (k > 0), else at its last text token.

The batch (``MultiViewCollator``): ``input_ids, attention_mask, labels`` (R, L) for the R view rows of the
batch, right padded; ``view_pair_rows`` (P, 2) long [source row, target row] and ``view_pair_index``
(P, 2) long [Enc(source) position, Enc(target) position] for every consecutive pair (i, i+1) of every
example. The ``llm-jepa`` term then reads pred (P, D) and target (P, D) as for two views.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .jsonl import DataError, iter_jsonl

IGNORE_INDEX = -100


def read_views(path: str | os.PathLike, limit: int | None = None) -> list[list[str]]:
    """The ``views`` lists of a JSONL file (up to ``limit`` rows; empty views left out). Raises DataError naming
    ``file:line`` for a row that is not ``{"views": [str, ...]}`` with at least two non-empty views."""
    rows = []
    for where, record in iter_jsonl(path, "multi-view file"):
        views = record.get("views") if isinstance(record, dict) else None
        if not isinstance(views, list) or not all(isinstance(v, str) for v in views):
            raise DataError(f"{where}: expected {{\"views\": [\"...\", \"...\"]}} (a list of strings)")
        kept = [v for v in views if v.strip()]
        if len(kept) < 2:
            raise DataError(f"{where}: a multi-view row needs at least two non-empty views (got {len(kept)})")
        rows.append(kept)  # empty views are left out: the chain runs over the others
        if limit is not None and len(rows) >= limit:
            break
    return rows


def is_multiview(path: str | os.PathLike) -> bool:
    """Whether the file's first row is a ``{"views": [...]}`` row (False for an absent or other file)."""
    try:
        for _, record in iter_jsonl(path):
            return isinstance(record, dict) and "views" in record
    except DataError:
        return False
    return False


def encode_views(views: list[str], tokenizer, predictor_ids: list[int], max_length: int = 512) -> dict:
    """One example's rows: ``{"rows": [ids], "labels": [labels], "enc": [(source position, target position)]}``
    (module docstring). Each view keeps its first ``max_length − 1 − k`` tokens."""
    k, eos = len(predictor_ids), tokenizer.eos_token_id
    rows, labels, enc = [], [], []
    for i, text in enumerate(views):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max(1, max_length - 1 - k)] + [eos]
        predicts = i < len(views) - 1
        rows.append(ids + (list(predictor_ids) if predicts else []))
        labels.append(ids + ([IGNORE_INDEX] * k if predicts else []))
        last_text = len(ids) - 2 if len(ids) > 1 else 0
        enc.append((len(rows[-1]) - 1 if predicts and k else last_text, last_text))
    return {"rows": rows, "labels": labels, "enc": enc}


@dataclass
class MultiViewCollator:
    """Collate ``encode_views`` features (module docstring for the tensors)."""

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = [r for f in features for r in f["rows"]]
        labels = [lab for f in features for lab in f["labels"]]
        width = max(len(r) for r in rows)
        pairs, index, offset = [], [], 0
        for f in features:
            for i in range(len(f["rows"]) - 1):
                pairs.append([offset + i, offset + i + 1])
                index.append([f["enc"][i][0], f["enc"][i + 1][1]])
            offset += len(f["rows"])
        return {
            "input_ids": torch.tensor([r + [self.pad_token_id] * (width - len(r)) for r in rows], dtype=torch.long),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long),
            "labels": torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for lab in labels], dtype=torch.long),
            "view_pair_rows": torch.tensor(pairs, dtype=torch.long),
            "view_pair_index": torch.tensor(index, dtype=torch.long),
        }
