"""Distributional constraints on a batch of embeddings (the audit's family 2): VICReg and uniformity here,
SIGReg in ``sigreg.py``.

Each term reads an (N, D) set of embeddings chosen by ``embeddings``: ``tokens`` (default: every user and
assistant content token's hidden state at ``layer`` — no extra tokens computed), ``rows`` (the mean of
each row's content states, N = B) or ``views`` (Pred(Enc(Text)) and Enc(Code), N = 2B; needs the views).

Every statistic is computed in at least float32 with autocast off (``full_precision``): under bf16 mixed
precision a projection ``z @ a`` would otherwise run in bf16 (8 significant bits) before cos/sin, and
``torch.pdist`` has no bf16 kernel at all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Auxiliary, Needs, Step, full_precision, register

EMBEDDINGS = ("tokens", "rows", "views")


def vicreg_terms(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's variance and covariance terms (Bardes et al. 2022, eqs. 1 and 3): v = mean_d relu(γ −
    sqrt(Var(z_d) + ε)), c = Σ_{d≠e} Cov(z)_{de}² / D. z (N, D), N ≥ 2. Returns (v, c), float32 or wider."""
    with full_precision(z) as (z,):
        centred = z - z.mean(0, keepdim=True)
        std = torch.sqrt(centred.var(0) + eps)
        variance = F.relu(gamma - std).mean()
        cov = centred.T @ centred / (z.shape[0] - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return variance, off.pow(2).sum() / z.shape[1]


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log mean_{i<j} exp(−t ‖ẑ_i − ẑ_j‖²) over L2-normalised rows (Wang & Isola 2020). z (N, D), N ≥ 2.

    Computed in at least float32 (``full_precision``): ``torch.pdist`` has no bf16 kernel."""
    with full_precision(z) as (z,):
        distances = torch.pdist(F.normalize(z, dim=-1)).pow(2)
        return torch.logsumexp(-t * distances, dim=0) - math.log(distances.numel())


class _OnEmbeddings(Auxiliary):
    """Shared by the three terms: which embeddings they constrain (module docstring)."""

    def needs(self) -> Needs:
        which = self.params["embeddings"]
        return Needs(views=True) if which == "views" else Needs(layers=(self.params["layer"],))

    def embeddings(self, step: Step) -> torch.Tensor:
        which = self.params["embeddings"]
        if which == "views":
            return torch.cat([step.pred, step.target])
        h, mask = step.hidden[self.params["layer"]], step.content_mask()
        if which == "tokens":
            return h[mask]
        weights = mask.to(h.dtype)[..., None]
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1)


@register
class VICReg(_OnEmbeddings):
    """VICReg's variance + covariance terms (no invariance term: that is the JEPA term's job):
    ``variance_weight``·v + ``covariance_weight``·c (``vicreg_terms``)."""

    name = "vicreg"
    family = "distribution"
    formula = "μ·mean_d relu(γ − std(z_d)) + ν·Σ_{d≠e} Cov(z)²_{de} / D"
    source = "VICReg (Bardes, Ponce & LeCun 2022), eqs. 1 and 3"
    PARAMS = {"embeddings": "tokens", "layer": -1, "gamma": 1.0, "variance_weight": 1.0, "covariance_weight": 1.0}
    CHOICES = {"embeddings": EMBEDDINGS}

    def forward(self, step: Step) -> torch.Tensor:
        variance, covariance = vicreg_terms(self.embeddings(step), float(self.params["gamma"]))
        return self.params["variance_weight"] * variance + self.params["covariance_weight"] * covariance


@register
class Uniformity(_OnEmbeddings):
    """Uniformity on the hypersphere (``uniformity``, t = 2): lower is more uniform."""

    name = "uniformity"
    family = "distribution"
    formula = "log mean_{i<j} exp(−t‖ẑ_i − ẑ_j‖²), t = 2"
    source = "Wang & Isola 2020, 'Understanding contrastive representation learning'"
    PARAMS = {"embeddings": "tokens", "layer": -1, "t": 2.0}
    CHOICES = {"embeddings": EMBEDDINGS}

    def forward(self, step: Step) -> torch.Tensor:
        return uniformity(self.embeddings(step), float(self.params["t"]))
