"""The LLM-JEPA objective (Huang, LeCun, Balestriero; eq. 2, with γ from eq. 3):

    L = γ · L_NTP + λ · d(Pred(Enc(Text)), Enc(Code))

Enc(x) is the last-layer hidden state at the view's Enc token; Pred is the same LM run over the k
predictor tokens appended to the Text view, so Pred(Enc(Text)) is read at the last predictor token
(k = 0: Pred is the identity). Both embeddings carry gradient, as in the paper (no stop-gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DISTANCES = ("cosine", "l2", "mse", "infonce")


def gather_enc(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick one hidden state per row.

    Args:
        hidden: (N, L, D) float — last-layer hidden states.
        index: (N,) long — position of the Enc token in each row.
    Returns:
        (N, D) float.
    """
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index]


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
        () float — the mean distance over the B pairs.
    Raises:
        ValueError if ``distance`` is unknown, shapes differ, or τ ≤ 0.
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must both be (B, D); got {tuple(pred.shape)} and {tuple(target.shape)}")
    if distance == "cosine":
        return (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean()
    if distance == "l2":
        return (pred - target).norm(dim=-1).mean()
    if distance == "mse":
        return (pred - target).pow(2).mean()
    if distance == "infonce":
        if temperature <= 0:
            raise ValueError(f"infonce temperature must be > 0, got {temperature}")
        logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature  # (B, B)
        return F.cross_entropy(logits, torch.arange(pred.shape[0], device=pred.device))
    raise ValueError(f"unknown JEPA distance {distance!r}; choose one of {DISTANCES}")


@dataclass
class LLMJEPALossOutput:
    loss: torch.Tensor  # () — γ·ntp + λ·jepa
    ntp: torch.Tensor  # () — L_NTP as given
    jepa: torch.Tensor  # () — d(Pred(Enc(Text)), Enc(Code))
    cosine: torch.Tensor  # () — mean cos(Pred(Enc(Text)), Enc(Code)), detached, for monitoring


class LLMJEPALoss(torch.nn.Module):
    """Combine an NTP loss with the JEPA distance (LLM-JEPA eq. 2/3).

    Args:
        lbd: λ, weight of the JEPA term (≥ 0). λ = 0 returns exactly ``gamma * ntp``.
        gamma: γ, weight of the NTP term (≥ 0).
        distance, temperature: see ``jepa_distance``.
    """

    def __init__(self, lbd: float = 1.0, gamma: float = 1.0, distance: str = "cosine", temperature: float = 0.07):
        super().__init__()
        if lbd < 0 or gamma < 0:
            raise ValueError(f"λ and γ must be ≥ 0, got λ={lbd}, γ={gamma}")
        if distance not in DISTANCES:
            raise ValueError(f"unknown JEPA distance {distance!r}; choose one of {DISTANCES}")
        self.lbd, self.gamma, self.distance, self.temperature = lbd, gamma, distance, temperature

    def forward(self, ntp: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> LLMJEPALossOutput:
        """ntp: () float; pred, target: (B, D) float. Returns an LLMJEPALossOutput of scalars."""
        jepa = jepa_distance(pred, target, self.distance, self.temperature)
        cosine = F.cosine_similarity(pred.detach(), target.detach(), dim=-1).mean()
        loss = self.gamma * ntp + self.lbd * jepa if self.lbd > 0 else self.gamma * ntp
        return LLMJEPALossOutput(loss=loss, ntp=ntp, jepa=jepa, cosine=cosine)


def jepa_dropped(seed: int, step: int, rate: float) -> bool:
    """Whether optimizer step ``step`` skips the JEPA term (loss dropout, LLM-JEPA §5.2).

    Drawn from a generator seeded by (seed, step) alone, so every process (and every micro-batch of
    an accumulated step) takes the same decision without communicating. ``rate`` is α in [0, 1).
    Raises ValueError if α is outside [0, 1).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"JEPA loss dropout α must be in [0, 1), got {rate}")
    if rate == 0.0:
        return False
    generator = torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))
    return torch.rand((), generator=generator).item() < rate
