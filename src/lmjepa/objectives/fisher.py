"""The view distance measured through the LM head: the Fisher metric (the audit's family 4) and a
decoder-visible JEPA (family 5). The audit does not publish its exact definitions: these are lmjepa's
constructions for the two families, stated here and in the README.

W (V, D) is the unembedding (LM-head weight); the hidden states LLM-JEPA reads are the last layer's,
after the final norm, so W·h are the model's logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Auxiliary, Needs, Step, full_precision, register


def fisher_distance(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """½ (p − t)ᵀ Wᵀ (diag(π) − ππᵀ) W (p − t) with π = softmax(W t), averaged over rows.

    The Fisher information of the categorical softmax(W·) at t, so the second-order term of
    KL(π_t ‖ softmax(W p)) in p − t. π is detached (the metric is evaluated at the target, not trained
    through). pred, target (B, D); weight (V, D). Returns a () tensor ≥ 0, float32 or wider, autocast off.
    """
    with full_precision(pred, target, weight) as (pred, target, weight):
        pi = F.softmax(target.detach() @ weight.T, dim=-1)  # (B, V)
        u = (pred - target) @ weight.T  # W(p − t), (B, V)
        return 0.5 * ((pi * u**2).sum(-1) - (pi * u).sum(-1) ** 2).mean()


def decoder_kl(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(W t / τ) ‖ softmax(W p / τ)), the target distribution detached, averaged over rows.
    pred, target (B, D); weight (V, D). Returns a () tensor ≥ 0, float32 or wider, autocast off (bf16
    logits of two nearly equal states would differ by their rounding, a KL floor of the size of the signal)."""
    with full_precision(pred, target, weight) as (pred, target, weight):
        target_logp = F.log_softmax(target.detach() @ weight.T / temperature, dim=-1)
        pred_logp = F.log_softmax(pred @ weight.T / temperature, dim=-1)
        return F.kl_div(pred_logp, target_logp, log_target=True, reduction="batchmean")


@register
class FisherJEPA(Auxiliary):
    """The LLM-JEPA view distance in the LM head's Fisher metric (``fisher_distance``): a displacement
    of Pred(Enc(Text)) from Enc(Code) costs what it would change in the next-token distribution."""

    name = "fisher-jepa"
    family = "fisher"
    formula = "½ (p − t)ᵀ Wᵀ (diag π − ππᵀ) W (p − t), π = softmax(W t)"
    source = "lmjepa's construction for the audit's Fisher-metric family (Amari 1998: Fisher metric of softmax)"

    def needs(self) -> Needs:
        return Needs(views=True, lm_head=True)

    def forward(self, step: Step) -> torch.Tensor:
        return fisher_distance(step.pred, step.target, step.lm_head)


@register
class DecoderJEPA(Auxiliary):
    """The view distance after the LM head (``decoder_kl``): its signal reaches the decoder."""

    name = "decoder-jepa"
    family = "decoder"
    formula = "KL(softmax(W t/τ) ‖ softmax(W p/τ)), t detached"
    source = "lmjepa's construction for the audit's decoder-visible JEPA family"
    PARAMS = {"temperature": 1.0}

    def needs(self) -> Needs:
        return Needs(views=True, lm_head=True)

    def forward(self, step: Step) -> torch.Tensor:
        return decoder_kl(step.pred, step.target, step.lm_head, float(self.params["temperature"]))
