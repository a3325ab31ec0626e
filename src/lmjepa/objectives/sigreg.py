"""LeJEPA's SIGReg (the audit's distributional family): the sliced Epps–Pulley statistic of a batch of
embeddings against an isotropic standard Gaussian. ``sigreg`` is the pure function; ``SIGReg`` the term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Step, full_precision, register
from .distribution import EMBEDDINGS, _OnEmbeddings
from ..seeds import step_seed


def sigreg(z: torch.Tensor, directions: torch.Tensor, t_max: float = 3.0, n_points: int = 17) -> torch.Tensor:
    """LeJEPA's sliced Epps–Pulley statistic (rbalestr-lab/lejepa ``univariate/epps_pulley.py`` +
    ``multivariate/slicing.py``): the mean over M projections x = z·a_m of

        EP(x) = N · Σ_j w_j [(mean_n cos(t_j x_n) − e^{−t_j²/2})² + (mean_n sin(t_j x_n))²],

    t_j = linspace(0, t_max, n_points), w_j = e^{−t_j²/2} · (2Δt inside, Δt at both ends) — the official
    trapezoid convention (the statistic is 0 in expectation only for standard normal projections).

    z: (N, D) float; directions: (D, M) with unit columns. Returns a () tensor, computed in at least float32
    with autocast off (a bf16 projection before cos/sin would keep 8 significant bits). Raises ValueError on
    mismatched shapes or an even ``n_points``.
    """
    if z.dim() != 2 or directions.dim() != 2 or z.shape[1] != directions.shape[0]:
        raise ValueError(f"need z (N, D) and directions (D, M); got {tuple(z.shape)} and {tuple(directions.shape)}")
    if n_points % 2 != 1:
        raise ValueError(f"n_points must be odd, got {n_points}")
    with full_precision(z, directions) as (z, directions):
        t = torch.linspace(0, t_max, n_points, device=z.device, dtype=z.dtype)
        dt = t_max / (n_points - 1)
        weights = torch.full_like(t, 2 * dt)
        weights[[0, -1]] = dt
        phi = torch.exp(-0.5 * t**2)
        x = (z @ directions.to(z.dtype)).unsqueeze(-1) * t  # (N, M, T)
        err = (torch.cos(x).mean(0) - phi) ** 2 + torch.sin(x).mean(0) ** 2  # (M, T)
        return (err @ (weights * phi)).mean() * z.shape[0]


def random_directions(dim: int, count: int, seed: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(dim, count) unit columns from a generator seeded by ``seed`` (the same on every process)."""
    a = torch.randn(dim, count, generator=torch.Generator().manual_seed(seed))
    return F.normalize(a, dim=0).to(device=device, dtype=dtype)


@register
class SIGReg(_OnEmbeddings):
    """LeJEPA's SIGReg: the sliced Epps–Pulley statistic (``sigreg``) of the embeddings against an
    isotropic standard Gaussian, over ``num_slices`` random directions drawn from a generator seeded
    by (seed, step) — the same directions on every process."""

    name = "sigreg"
    family = "distribution"
    formula = "mean_m N·∫|φ̂_{z·a_m}(t) − e^{−t²/2}|² w(t) dt (sliced Epps–Pulley)"
    source = "LeJEPA (Balestriero & LeCun 2025), rbalestr-lab/lejepa epps_pulley.py + slicing.py"
    PARAMS = {"embeddings": "tokens", "layer": -1, "num_slices": 256, "t_max": 3.0, "n_points": 17}
    CHOICES = {"embeddings": EMBEDDINGS}

    def forward(self, step: Step) -> torch.Tensor:
        z = self.embeddings(step)
        directions = random_directions(z.shape[1], int(self.params["num_slices"]), step_seed(step.seed, step.step),
                                       z.device, z.dtype)
        return sigreg(z, directions, float(self.params["t_max"]), int(self.params["n_points"]))
