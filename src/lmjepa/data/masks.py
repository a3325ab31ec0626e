"""Attention masks for packed views (LLM-JEPA later version, §3.2: block-causal mask).

Masks are built as boolean ``allowed[b, q, k]`` (query q may attend to key k) with tensor ops, then
turned into the additive float mask transformers takes for custom 4-D masks: 0 where allowed,
``torch.finfo(dtype).min`` where blocked — never ``-inf``, which turns a fully masked (padding)
query row into NaN. A boolean mask is silently wrong under ``eager`` attention, hence the float form.
"""

from __future__ import annotations

import torch

PAD_BLOCK = -1


def block_causal(blocks: torch.Tensor) -> torch.Tensor:
    """Causal attention inside each block, none across blocks, none to or from padding.

    Args:
        blocks: (B, S) long — block id of each position (≥ 0), ``PAD_BLOCK`` (-1) for padding.
            Each block must be contiguous in the row.
    Returns:
        (B, S, S) bool ``allowed``.
    """
    same = blocks[:, :, None] == blocks[:, None, :]
    real = blocks[:, :, None] >= 0
    positions = torch.arange(blocks.shape[1], device=blocks.device)
    causal = positions[None, :, None] >= positions[None, None, :]
    return same & real & causal


def to_float_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Q, K) bool → (B, 1, Q, K) additive mask in ``dtype`` (0 keep, finfo.min block)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def positions_in_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """Position ids restarting at 0 at the start of every block (padding gets 0).

    blocks: (B, S) long with contiguous blocks. Returns (B, S) long.
    """
    index = torch.arange(blocks.shape[1], device=blocks.device).expand_as(blocks)
    starts = torch.ones_like(blocks, dtype=torch.bool)
    starts[:, 1:] = blocks[:, 1:] != blocks[:, :-1]
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return torch.where(blocks >= 0, index - first, torch.zeros_like(index))
