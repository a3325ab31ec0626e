"""The Predict-and-Reconstruct objective (P&R §3): MLM + JEPA latent prediction with a weight λ.

    L_JEPA = 1 − mean cos(ĥ_ij, h_ij)     eq. 5: over target positions of usable rows
    L_MLM  = CE(h_ψ(z_full), y_mask)       eq. 6: over BERT-masked positions
    L      = λ·L_JEPA + (1 − λ)·L_MLM      eq. 7
    θ̄     ← m·θ̄ + (1 − m)·θ               eq. 8: the EMA target encoder, m rising linearly

λ modes (``LAMBDA_MODES``): ``fixed`` (default 0.5), ``schedule`` (linear from ``lambda_start`` to
``lambda_end`` over training: MLM-heavy → JEPA-heavy, the paper's proposed curriculum), ``learnable``
(λ = σ(w), w₀ = 0, as the paper — ∂L/∂w = σ'(w)(L_JEPA − L_MLM) pushes λ toward whichever loss is
currently smaller, so λ tracks loss scales rather than usefulness), and ``mlm_only`` (λ = 0; the
JEPA branch is not computed: the control). The networks (f_θ, g_φ, h_ψ) are in
``lmjepa.models.predict_reconstruct``; the block masks in ``lmjepa.data.block_masks``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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
