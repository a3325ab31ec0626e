"""The LLM-JEPA objective (Huang, LeCun, Balestriero; eq. 2, with γ from eq. 3):

    L = γ · L_NTP + λ · d(Pred(Enc(Text)), Enc(Code))

Enc(x) is the last-layer hidden state at the view's Enc token; Pred is the same LM run over the k
predictor tokens appended to the Text view, so Pred(Enc(Text)) is read at the last predictor token
(k = 0: Pred is the identity). Both embeddings carry gradient, as in the paper (no stop-gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.packing import gather_enc
from .base import Auxiliary, Needs, Step, full_precision, register
from ..seeds import step_seed

__all__ = ["DISTANCES", "LLMJEPA", "gather_enc", "jepa_distance", "jepa_dropped"]
DISTANCES = ("cosine", "l2", "mse", "infonce")


def jepa_distance(pred: torch.Tensor, target: torch.Tensor, distance: str = "cosine", temperature: float = 0.07) -> torch.Tensor:
    """d(Pred(Enc(Text)), Enc(Code)) averaged over the batch.

    Args:
        pred: (B, D) float — Pred(Enc(Text)).
        target: (B, D) float — Enc(Code).
        distance: ``cosine`` = 1 − cos(p, t) (the paper's choice); ``l2`` = ‖p − t‖₂;
            ``mse`` = mean over D of (p − t)²; ``infonce`` = cross-entropy of the batch's
            cosine-similarity matrix / ``temperature`` with positives on the diagonal (Text→Code).
        temperature: τ for ``infonce`` (> 0).
    Returns:
        () float — the mean distance over the B pairs, computed in at least float32 with autocast off (under
        bf16 autocast a bf16 cosine of nearly aligned vectors is 0 or 2⁻⁸: 1 − cos is rounded away).
    Raises:
        ValueError if ``distance`` is unknown, shapes differ, or τ ≤ 0.
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must both be (B, D); got {tuple(pred.shape)} and {tuple(target.shape)}")
    if distance not in DISTANCES:
        raise ValueError(f"unknown JEPA distance {distance!r}; choose one of {DISTANCES}")
    if distance == "infonce" and temperature <= 0:
        raise ValueError(f"infonce temperature must be > 0, got {temperature}")
    with full_precision(pred, target) as (pred, target):  # an MLP predictor's output is bf16 under autocast
        if distance == "cosine":
            return (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean()
        if distance == "l2":
            return (pred - target).norm(dim=-1).mean()
        if distance == "mse":
            return (pred - target).pow(2).mean()
        logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature  # (B, B), infonce
        return F.cross_entropy(logits, torch.arange(pred.shape[0], device=pred.device))


@register
class LLMJEPA(Auxiliary):
    """The LLM-JEPA term d(Pred(Enc(Text)), Enc(Code)) (LLM-JEPA eq. 2), with the audit's asymmetry options.

    Parameters: ``distance`` and ``temperature`` (``jepa_distance``); ``target``: ``live`` (both
    embeddings carry gradient, the paper), ``stop-grad`` (Enc(Code) detached, SimSiam; in ``separate``
    mode the Code rows then run without a graph) or ``ema`` (Enc(Code) from a momentum copy of the
    trainable parameters, BYOL; momentum ``ema_start`` → ``ema_end`` linearly, as in
    Predict-and-Reconstruct); ``predictor``: ``tokens`` (the k predictor tokens, the paper) or ``mlp``
    (then also a residual MLP head, Pred = h + W2·GELU(W1·h) with W2 = 0 at the start, so it begins as
    the identity). The views (k, view mode) are the config's ``jepa.predictors`` and ``jepa.views``.
    """

    name = "llm-jepa"
    family = "jepa"
    formula = "d(Pred(Enc(Text)), Enc(Code)), d ∈ {1 − cos, ‖·‖₂, mse, InfoNCE}"
    source = "LLM-JEPA eq. 2 (Huang, LeCun, Balestriero)"
    PARAMS = {"distance": "cosine", "temperature": 0.07, "target": "live", "predictor": "tokens",
              "ema_start": 0.996, "ema_end": 1.0}
    CHOICES = {"distance": DISTANCES, "target": ("live", "stop-grad", "ema"), "predictor": ("tokens", "mlp")}

    def __init__(self, hidden_size: int | None = None, **params):
        super().__init__(**params)
        self.head = None
        if self.params["predictor"] == "mlp":
            if hidden_size is None:
                raise ValueError("predictor: mlp needs the model's hidden size")
            self.head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
            nn.init.zeros_(self.head[2].weight)
            nn.init.zeros_(self.head[2].bias)

    def needs(self) -> Needs:
        return Needs(views=True, target=self.params["target"])

    def forward(self, step: Step) -> torch.Tensor:
        pred = step.pred if self.head is None else step.pred + self.head(step.pred)
        return jepa_distance(pred, step.target, self.params["distance"], self.params["temperature"])


def jepa_dropped(seed: int, step: int, rate: float, term: int = 0) -> bool:
    """Whether optimizer step ``step`` skips a term (loss dropout, LLM-JEPA §5.2).

    Drawn from a generator seeded by (seed, step, term index) alone, so every process (and every
    micro-batch of an accumulated step) takes the same decision without communicating; term 0 draws
    exactly what the single-term trainer drew. ``rate`` is α in [0, 1). Raises ValueError if α is
    outside [0, 1).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"loss dropout α must be in [0, 1), got {rate}")
    if rate == 0.0:
        return False
    generator = torch.Generator().manual_seed(step_seed(seed, step, term))
    return torch.rand((), generator=generator).item() < rate
