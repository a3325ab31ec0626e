"""1-D contiguous block masks for JEPA on text (Predict and Reconstruct §3.2; I-JEPA style).

Per sequence with ``n`` maskable tokens (non-padding, non-special; they must be one contiguous
run, as in ``[CLS] tokens [SEP] [PAD]…``):

* M target blocks (default 2), each a contiguous run of ``round(s·n)`` tokens, s ~ U[0.10, 0.25];
  targets may overlap each other;
* one context block of ``round(s·n)`` tokens, s ~ U[0.65, 0.85], **minus every target token**, so
  context and targets are disjoint;
* at least ``min_keep`` context tokens: the context block is redrawn up to ``tries`` times;
  if none keeps enough, the context becomes every maskable token outside the targets. A sequence
  that still has fewer than ``min_keep`` is marked unusable (``usable[b] = False``) and is left
  out of the JEPA loss — never trained on an empty or overlapping context.

Block sizes are fractions of the *actual* length of each sequence (the P&R code sized them
against 512 tokens while cutting sequences to 128).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BlockMasks:
    context: torch.Tensor  # (B, L) bool: visible to the context encoder
    targets: torch.Tensor  # (B, M, L) bool: positions whose target-encoder states are predicted
    usable: torch.Tensor  # (B,) bool: the sequence met min_keep and enters the JEPA loss


def _block(start: int, size: int, length: int) -> torch.Tensor:
    mask = torch.zeros(length, dtype=torch.bool)
    mask[start : start + size] = True
    return mask


def sample_block_masks(
    maskable: torch.Tensor,
    num_targets: int = 2,
    target_scale: tuple[float, float] = (0.10, 0.25),
    context_scale: tuple[float, float] = (0.65, 0.85),
    min_keep: int = 4,
    tries: int = 20,
    generator: torch.Generator | None = None,
) -> BlockMasks:
    """Sample masks for a batch; ``maskable`` is ``(B, L)`` bool (True = real, non-special token).

    Raises ValueError if a row's maskable tokens are not one contiguous run, or a scale is not
    within (0, 1].
    """
    for low, high in (target_scale, context_scale):
        if not 0 < low <= high <= 1:
            raise ValueError(f"scale {low, high} must satisfy 0 < low <= high <= 1")
    batch, length = maskable.shape
    context = torch.zeros(batch, length, dtype=torch.bool)
    targets = torch.zeros(batch, num_targets, length, dtype=torch.bool)
    usable = torch.zeros(batch, dtype=torch.bool)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    def start(n: int, size: int) -> int:
        return int(torch.randint(0, n - size + 1, (), generator=generator))

    for b in range(batch):
        positions = maskable[b].nonzero().flatten()
        n = len(positions)
        if n == 0:
            continue
        offset = int(positions[0])
        if int(positions[-1]) - offset + 1 != n:
            raise ValueError(f"row {b}: maskable tokens must be one contiguous run")
        for m in range(num_targets):
            size = max(1, round(uniform(*target_scale) * n))
            targets[b, m, offset : offset + n] = _block(start(n, size), size, n)
        taken = targets[b].any(dim=0)
        row_context = None
        for _ in range(tries):
            size = max(1, round(uniform(*context_scale) * n))
            candidate = torch.zeros(length, dtype=torch.bool)
            candidate[offset : offset + n] = _block(start(n, size), size, n)
            candidate &= ~taken
            if int(candidate.sum()) >= min_keep:
                row_context = candidate
                break
        if row_context is None:
            row_context = maskable[b] & ~taken
        context[b] = row_context
        usable[b] = int(row_context.sum()) >= min_keep
    return BlockMasks(context=context, targets=targets, usable=usable)
