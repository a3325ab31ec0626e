"""Left-padded prompt batches, shared by generation and multiple choice."""

from __future__ import annotations

import torch


def length_sorted_batches(rows: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indices of ``rows`` sorted by length and cut into batches of ``batch_size`` (less padding)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(rows: list[list[int]], pad: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, both ``(B, W)`` long, W the longest row: each row right-aligned
    after ``pad`` tokens (mask 0 on them), so the next token of every row is at position W."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return ids, mask
