"""Block masks (Predict and Reconstruct §3.2): scales of the actual length, disjointness, min_keep,
padding and special tokens never selected; and BERT masking through transformers' collator."""

from __future__ import annotations

import pytest
import torch

from lmjepa.data.block_masks import sample_block_masks


def _maskable(lengths: list[int], width: int) -> torch.Tensor:
    """[CLS] + n tokens + [SEP] + padding: maskable = the n tokens."""
    rows = torch.zeros(len(lengths), width, dtype=torch.bool)
    for b, n in enumerate(lengths):
        rows[b, 1 : 1 + n] = True
    return rows


def test_scales_disjointness_min_keep_and_padding():
    generator = torch.Generator().manual_seed(0)
    lengths = [20, 40, 126, 60]
    maskable = _maskable(lengths, 128)
    for _ in range(50):
        masks = sample_block_masks(maskable, min_keep=4, generator=generator)
        for b, n in enumerate(lengths):
            # nothing outside the maskable run: padding, [CLS] and [SEP] are never selected
            assert not (masks.context[b] & ~maskable[b]).any()
            assert not (masks.targets[b] & ~maskable[b]).any()
            assert not (masks.context[b] & masks.targets[b].any(0)).any()  # disjoint
            for m in range(2):
                size = int(masks.targets[b, m].sum())
                idx = masks.targets[b, m].nonzero().flatten()
                assert idx[-1] - idx[0] + 1 == size  # contiguous
                assert round(0.10 * n) <= size <= round(0.25 * n)  # of the actual length, not of 512
            assert masks.usable[b] and int(masks.context[b].sum()) >= 4
            assert int(masks.context[b].sum()) <= round(0.85 * n)


def test_short_rows_fall_back_or_are_marked_unusable():
    generator = torch.Generator().manual_seed(1)
    masks = sample_block_masks(_maskable([6, 3, 0], 10), min_keep=3, generator=generator)
    assert masks.usable.tolist()[2] is False and not masks.context[2].any()
    for b in (0, 1):
        keep = int(masks.context[b].sum())
        assert masks.usable[b] == (keep >= 3)
        assert not (masks.context[b] & masks.targets[b].any(0)).any()


def test_seeded_and_validated():
    maskable = _maskable([30, 50], 64)
    first = sample_block_masks(maskable, generator=torch.Generator().manual_seed(7))
    second = sample_block_masks(maskable, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.context, second.context) and torch.equal(first.targets, second.targets)
    gap = torch.zeros(1, 8, dtype=torch.bool)
    gap[0, [1, 2, 5]] = True
    with pytest.raises(ValueError, match="contiguous"):
        sample_block_masks(gap)
    with pytest.raises(ValueError, match="scale"):
        sample_block_masks(maskable, target_scale=(0.3, 0.2))
