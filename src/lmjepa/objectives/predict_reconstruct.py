"""The Predict-and-Reconstruct objective (P&R §3): MLM + JEPA latent prediction with a weight λ.

    L_JEPA = 1 − mean cos(ĥ_ij, h_ij)     eq. 5: over target positions of usable rows
    L_MLM  = CE(h_ψ(z_full), y_mask)       eq. 6: over BERT-masked positions
    L      = λ·L_JEPA + (1 − λ)·L_MLM      eq. 7
    θ̄     ← m·θ̄ + (1 − m)·θ               eq. 8: the EMA target encoder, m rising linearly

λ modes (``LAMBDA_MODES``): ``fixed`` (default 0.5), ``schedule`` (linear from ``lambda_start`` to
``lambda_end`` over training: MLM-heavy → JEPA-heavy, the paper's proposed curriculum), ``learnable``
(λ = σ(w), w₀ = 0, as the paper — ∂L/∂w = σ'(w)(L_JEPA − L_MLM) pushes λ toward whichever loss is
currently smaller, so λ tracks loss scales rather than usefulness), and ``mlm_only`` (λ = 0; the
JEPA branch is not computed: the control). ``PredictReconstructLoss`` is eq. 7 as a term: it owns λ (its mode,
schedule and learnable w) and combines the two losses the networks compute (f_θ, g_φ, h_ψ:
``lmjepa.models.predict_reconstruct``; the block masks: ``lmjepa.data.block_masks``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LAMBDA_MODES = ("fixed", "schedule", "learnable", "mlm_only")


def current_lambda(mode: str, lbd: float = 0.5, start: float = 0.1, end: float = 0.9, progress: float = 0.0,
                   w: torch.Tensor | None = None) -> torch.Tensor:
    """λ as a 0-d tensor (differentiable through ``w`` in ``learnable`` mode).

    ``progress`` ∈ [0, 1] (clipped) drives ``schedule``. Raises ValueError for an unknown mode or a
    ``learnable`` mode without ``w``.
    """
    if mode not in LAMBDA_MODES:
        raise ValueError(f"lambda_mode must be one of {LAMBDA_MODES}, got {mode!r}")
    if mode == "learnable":
        if w is None:
            raise ValueError("learnable λ needs its parameter w")
        return torch.sigmoid(w)
    if mode == "schedule":
        return torch.tensor(start + (end - start) * min(max(progress, 0.0), 1.0))
    return torch.tensor(0.0 if mode == "mlm_only" else lbd)


def latent_prediction_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_JEPA = 1 − mean cosine between predicted and target states (P&R eq. 5).

    ``predicted``, ``target``: ``(N, D)`` float, one row per target position; ``target`` should be
    the stop-gradient EMA output. Returns a 0-d tensor in [0, 2].
    """
    return 1.0 - F.cosine_similarity(predicted, target, dim=-1).mean()


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_MLM = mean cross-entropy over the masked positions (P&R eq. 6). ``logits`` ``(N, V)``,
    ``labels`` ``(N,)`` long: the rows are the masked positions only (computed in fp32)."""
    return F.cross_entropy(logits.float(), labels)


def hybrid_loss(jepa: torch.Tensor, mlm: torch.Tensor, lbd: torch.Tensor) -> torch.Tensor:
    """L = λ·L_JEPA + (1 − λ)·L_MLM (P&R eq. 7)."""
    return lbd * jepa + (1 - lbd) * mlm


class PredictReconstructLoss(nn.Module):
    """The P&R objective as a term: ``L = λ·L_JEPA + (1 − λ)·L_MLM`` (P&R eq. 7), λ by ``lambda_mode``.

    Args:
        lambda_mode: one of ``LAMBDA_MODES``; ``lbd``: λ for ``fixed``; ``lambda_start`` / ``lambda_end``: the ends
            of ``schedule``. ``learnable`` gives the term its one parameter ``w`` (λ = σ(w), w₀ = 0).
    Raises ValueError for an unknown λ mode or a λ outside [0, 1].
    """

    name = "predict-reconstruct"
    formula = "λ·L_JEPA + (1 − λ)·L_MLM, λ fixed / scheduled / σ(w) learnable"
    source = "Predict and Reconstruct eq. 5–7"

    def __init__(self, lambda_mode: str = "fixed", lbd: float = 0.5, lambda_start: float = 0.1,
                 lambda_end: float = 0.9):
        super().__init__()
        if lambda_mode not in LAMBDA_MODES:
            raise ValueError(f"lambda_mode must be one of {LAMBDA_MODES}, got {lambda_mode!r}")
        if not all(0 <= v <= 1 for v in (lbd, lambda_start, lambda_end)):
            raise ValueError("λ values must lie in [0, 1]")
        self.lambda_mode, self.lbd, self.lambda_start, self.lambda_end = lambda_mode, lbd, lambda_start, lambda_end
        self.w = nn.Parameter(torch.zeros(())) if lambda_mode == "learnable" else None

    @property
    def uses_jepa(self) -> bool:
        """False for the ``mlm_only`` control: no JEPA branch is computed."""
        return self.lambda_mode != "mlm_only"

    def current_lambda(self, progress: float = 0.0) -> torch.Tensor:
        """λ as a 0-d tensor (differentiable in ``learnable`` mode); ``progress`` ∈ [0, 1] drives ``schedule``."""
        return current_lambda(self.lambda_mode, self.lbd, self.lambda_start, self.lambda_end, progress, self.w)

    def forward(self, mlm: torch.Tensor, jepa: torch.Tensor | None, progress: float = 0.0) -> dict:
        """``{"loss", "mlm_loss", "jepa_loss", "lambda"}``: the loss to back-propagate (eq. 7; L_MLM alone for
        ``mlm_only``, where ``jepa`` is None) and its parts, detached, for the log. ``mlm``, ``jepa``: 0-d."""
        if not self.uses_jepa:
            return {"loss": mlm, "mlm_loss": mlm.detach(), "jepa_loss": None, "lambda": 0.0}
        lbd = self.current_lambda(progress).to(mlm.device)
        return {"loss": hybrid_loss(jepa, mlm, lbd), "mlm_loss": mlm.detach(), "jepa_loss": jepa.detach(),
                "lambda": float(lbd.detach())}


def ema_momentum(step: int, total_steps: int, start: float = 0.996, end: float = 1.0) -> float:
    """Momentum rising linearly from ``start`` to ``end`` over training (P&R eq. 8, I-JEPA)."""
    if total_steps <= 0:
        return end
    return start + (end - start) * min(step / total_steps, 1.0)


def collapse_monitors(embeddings: torch.Tensor) -> dict[str, float]:
    """Online collapse monitors on ``(N, D)`` pooled embeddings.

    ``embedding_std``: mean over dimensions of the std of the L2-normalised rows (→ 0 under collapse,
    ≈ 1/√D when spread), ``embedding_std_ratio``: its ratio to 1/√D, and ``effective_rank``: Roy &
    Vetterli's exp(entropy of the normalised singular values of the centred embeddings) — the same
    quantity as ``lmjepa.analysis.geometry.effective_rank`` (tests compare the two).
    """
    z = embeddings.float()
    unit = F.normalize(z, dim=-1)
    std = unit.std(dim=0).mean().item()
    sigma = torch.linalg.svdvals((z - z.mean(0, keepdim=True)).double())
    p = sigma / sigma.sum()
    p = p[p > 0]
    rank = math.exp(float(-(p * p.log()).sum()))
    return {"embedding_std": std, "embedding_std_ratio": std * math.sqrt(embeddings.shape[-1]), "effective_rank": rank}
