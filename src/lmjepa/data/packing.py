"""Batching the full sequence and the two views, in one of three view modes (config ``jepa.views``).

Every batch holds the plain NTP rows ``input_ids, attention_mask, labels`` (B, L), right padded to the
longest row (no fixed 512 padding). Depending on the mode it adds:

``separate`` (reference semantics): Text rows and Code rows as their own sequences,
    ``view_input_ids, view_attention_mask`` (2B, V) — rows [Text_1..Text_B, Code_1..Code_B] — and
    ``view_enc_index`` (2B,). The trainer runs the full rows and the view rows as separate forwards.

``packed`` (the paper's two-block form): Text + predictors and Code as two blocks with a block-causal
    mask (no attention across blocks) and position ids restarting at 0 in each block, so each block
    sees exactly what it would see alone. The full sequence rides in the same row as a third block:
    ``[Text + predictors | Code | full sequence]``, full sequence last so that only its logits are
    computed. That is exactly the paper's "full-sequence row beside the [Text | Code] row", in one
    forward pass, without LM-head work on view tokens.

``shared_prefix``: ONE row per example, ``[Code | predictors | full sequence]``, laid out so the full
    sequence is last (its logits are the row's last L positions). The full sequence is causal as in
    plain NTP; the predictor tokens attend to the prompt (system + template + user, i.e. everything
    before the answer) and to themselves, at positions continuing the prompt; the Code block attends
    only to itself, from position 0. So its Text view is the whole templated prompt — including the
    system prompt and template tokens — unlike ``separate``/``packed`` (user content only). With
    k = 0, Enc(Text) is the last prompt token of the full sequence.

Both one-row modes give ``pack_input_ids``, ``pack_position_ids`` (B, S) long, ``pack_allowed``
(B, S, S) bool (query may attend to key) and ``pack_enc_index`` (B, 2) [Enc(Text), Enc(Code)]; the
full sequence always fills the row's last L positions (L = the width of ``input_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .masks import PAD_BLOCK, block_causal, positions_in_blocks
from .views import IGNORE_INDEX

VIEW_MODES = ("separate", "packed", "shared_prefix")


def _pad(rows: list[list[int]], value: int, width: int | None = None) -> torch.Tensor:
    width = width or max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _separate(features: list[dict], pad: int) -> dict[str, torch.Tensor]:
    views = [f["text_ids"] for f in features] + [f["code_ids"] for f in features]
    return {
        "view_input_ids": _pad(views, pad),
        "view_attention_mask": _pad([[1] * len(r) for r in views], 0),
        "view_enc_index": torch.tensor([len(r) - 1 for r in views], dtype=torch.long),
    }


def _packed(features: list[dict], pad: int) -> dict[str, torch.Tensor]:
    """One row per example: [Text + predictors | Code | full sequence], each block padded to the batch max."""
    widths = [max(len(f[key]) for f in features) for key in ("text_ids", "code_ids", "input_ids")]
    rows, blocks, enc = [], [], []
    for f in features:
        row, block = [], []
        for block_id, (key, width) in enumerate(zip(("text_ids", "code_ids", "input_ids"), widths)):
            ids = f[key]
            row += ids + [pad] * (width - len(ids))
            block += [block_id] * len(ids) + [PAD_BLOCK] * (width - len(ids))
        rows.append(row)
        blocks.append(block)
        enc.append([len(f["text_ids"]) - 1, widths[0] + len(f["code_ids"]) - 1])
    block_ids = torch.tensor(blocks, dtype=torch.long)
    return {
        "pack_input_ids": torch.tensor(rows, dtype=torch.long),
        "pack_position_ids": positions_in_blocks(block_ids),
        "pack_allowed": block_causal(block_ids),
        "pack_enc_index": torch.tensor(enc, dtype=torch.long),
    }


def _shared_prefix(features: list[dict], pad: int, k: int) -> dict[str, torch.Tensor]:
    code_width = max(len(f["code_ids"]) for f in features)
    full_width = max(len(f["input_ids"]) for f in features)
    width = code_width + k + full_width
    pred_start, full_start = code_width, code_width + k
    ids = torch.full((len(features), width), pad, dtype=torch.long)
    positions = torch.zeros_like(ids)
    allowed = torch.zeros(len(features), width, width, dtype=torch.bool)
    enc = []
    for row, f in enumerate(features):
        c, n, p = len(f["code_ids"]), len(f["input_ids"]), f["prompt_len"]
        predictors = f["text_ids"][len(f["text_ids"]) - k :] if k else []
        ids[row, :c] = torch.tensor(f["code_ids"])
        ids[row, pred_start:full_start] = torch.tensor(predictors, dtype=torch.long)
        ids[row, full_start : full_start + n] = torch.tensor(f["input_ids"])
        positions[row, :c] = torch.arange(c)
        positions[row, pred_start:full_start] = p + torch.arange(k)
        positions[row, full_start : full_start + n] = torch.arange(n)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed[row, :c, :c] = causal[:c, :c]  # Code: causal within itself
        allowed[row, full_start : full_start + n, full_start : full_start + n] = causal[:n, :n]  # plain NTP
        allowed[row, pred_start:full_start, pred_start:full_start] = causal[:k, :k]  # predictors: themselves
        allowed[row, pred_start:full_start, full_start : full_start + p] = True  # ... and the prompt
        text_enc = full_start - 1 if k else full_start + p - 1
        enc.append([text_enc, c - 1])
    return {
        "pack_input_ids": ids,
        "pack_position_ids": positions,
        "pack_allowed": allowed,
        "pack_enc_index": torch.tensor(enc, dtype=torch.long),
    }


@dataclass
class JEPACollator:
    """Collate encoded examples (``lmjepa.data.views.encode_dataset``) for a view mode.

    Args:
        pad_token_id: id used for padding (never attended to).
        views: ``separate``, ``packed`` or ``shared_prefix`` (see the module docstring).
        predictors: k, the number of predictor tokens at the end of each ``text_ids``
            (needed by ``shared_prefix``). Raises ValueError on an unknown mode.
    """

    pad_token_id: int
    views: str = "separate"
    predictors: int = 0

    def __post_init__(self):
        if self.views not in VIEW_MODES:
            raise ValueError(f"unknown view mode {self.views!r}; choose one of {VIEW_MODES}")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        full = [f["input_ids"] for f in features]
        batch = {
            "input_ids": _pad(full, self.pad_token_id),
            "attention_mask": _pad([[1] * len(r) for r in full], 0),
            "labels": _pad([f["labels"] for f in features], IGNORE_INDEX),
        }
        if self.views == "separate":
            batch.update(_separate(features, self.pad_token_id))
        elif self.views == "packed":
            batch.update(_packed(features, self.pad_token_id))
        else:
            batch.update(_shared_prefix(features, self.pad_token_id, self.predictors))
        return batch
