"""Every random stream of a run derives from its one seed ``s`` (``train.seed``) here, by one formula per use:

    initialisation (predictor-token rows, from-scratch weights, LoRA)  s
    data order (the Trainer's ``data_seed``; MLM masking of P&R)      s
    P&R's JEPA span masking                                           s + 1
    per optimizer step t, per auxiliary term i (loss dropout,
    SIGReg's projection directions)                                   (s · 1,000,003 + t + i · 7,919,000,003) mod 2^63
    the c-th random draw of step t (STP's spans)                      step_seed(s, t) · 131 + c

The multipliers are primes larger than any step count or seed in use, so distinct (s, t, i) give distinct
seeds; the derivations are the ones lmjepa always used, so every committed result reproduces bit for bit.
"""

from __future__ import annotations

STEP_PRIME = 1_000_003
TERM_PRIME = 7_919_000_003
DRAW_PRIME = 131


def init_seed(seed: int) -> int:
    """The seed of a run's initialisation (``torch.manual_seed`` before new rows or weights are drawn)."""
    return seed


def data_order_seed(seed: int) -> int:
    """The seed of the training data order (``TrainingArguments.data_seed``) and of MLM masking."""
    return seed


def span_mask_seed(seed: int) -> int:
    """The seed of Predict-and-Reconstruct's JEPA span masking (kept apart from the MLM stream)."""
    return seed + 1


def step_seed(seed: int, step: int, term: int = 0) -> int:
    """The seed of optimizer step ``step`` for auxiliary term ``term`` (loss dropout, SIGReg directions), in
    [0, 2^63)."""
    return (seed * STEP_PRIME + step + term * TERM_PRIME) % (2**63)


def draw_seed(seed: int, step: int, call: int) -> int:
    """The seed of the ``call``-th random draw within optimizer step ``step`` (STP's spans)."""
    return step_seed(seed, step) * DRAW_PRIME + call
