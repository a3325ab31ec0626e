"""Batches for Predict-and-Reconstruct pretraining: BERT masking plus the JEPA block masks."""

from __future__ import annotations

import torch
from transformers import DataCollatorForLanguageModeling

from .block_masks import sample_block_masks
from ..seeds import data_order_seed, span_mask_seed


class HybridCollator:
    """Pads a batch, applies BERT masking (transformers' MLM collator: p, 80/10/10, special tokens and
    padding never selected) and samples the JEPA block masks (``block_masks.sample_block_masks``),
    both from generators seeded by ``seed`` (the MLM masks are the same for the hybrid and the control).

    Args:
        tokenizer: the encoder's tokenizer (BERT layout: [CLS] … [SEP]).
        objective: a ``HybridConfig`` (mlm_probability, num_targets, target_scale, context_scale, min_keep).
        seed: the run's seed.
    Returns from a call: ``input_ids`` (masked), ``attention_mask``, ``labels`` (MLM, -100 elsewhere),
    ``clean_ids``, ``context`` (B, L) bool, ``targets`` (B, M, L) bool, ``usable`` (B,) bool.
    """

    def __init__(self, tokenizer, objective, seed: int):
        self.mlm = DataCollatorForLanguageModeling(tokenizer, mlm_probability=objective.mlm_probability, seed=data_order_seed(seed))
        self.generator = torch.Generator().manual_seed(span_mask_seed(seed))
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.objective = objective

    def __call__(self, features: list[dict]) -> dict:
        batch = self.mlm([{"input_ids": f["input_ids"]} for f in features])
        labels = batch["labels"]
        clean = torch.where(labels != -100, labels, batch["input_ids"])
        maskable = batch["attention_mask"].bool() & ~torch.isin(clean, self.special)
        o = self.objective
        masks = sample_block_masks(maskable, o.num_targets, tuple(o.target_scale), tuple(o.context_scale), o.min_keep,
                                   generator=self.generator)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels,
                "clean_ids": clean, "context": masks.context, "targets": masks.targets, "usable": masks.usable}
