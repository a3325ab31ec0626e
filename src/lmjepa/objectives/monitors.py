"""Held-batch geometry monitors: the three quantities the JEPA audit reports auxiliaries changing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import content_mask
from .trajectory import trajectory_curvature


def anisotropy(z: torch.Tensor) -> float:
    """Mean pairwise cosine over the distinct pairs of rows of ``z`` (N, D): Σ_{i≠j} cos / (N(N − 1))."""
    unit = F.normalize(z.float(), dim=-1)
    n = unit.shape[0]
    return float(((unit.sum(0) @ unit.sum(0)) - n) / max(1, n * (n - 1)))


@torch.no_grad()
def geometry_monitors(hidden: torch.Tensor, spans: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, float]:
    """On the full sequence's last-layer states ``hidden`` (B, L, D) of a held batch:

    * ``geometry_curvature``: mean angle (radians) between consecutive displacements over the answer
      tokens (``trajectory_curvature`` on the answer spans, pooled over rows);
    * ``geometry_anisotropy``: mean pairwise cosine between the content tokens' states (i ≠ j);
    * ``geometry_variance``: mean over dimensions of the content tokens' per-dimension variance.
    ``spans`` (B, 4) as ``Step.spans``; ``attention_mask`` (B, L).
    """
    angles, counts = trajectory_curvature(hidden.float(), spans[:, 2], spans[:, 3])
    z = hidden[content_mask(spans, attention_mask)].float()
    return {"geometry_curvature": float(angles.sum() / counts.sum().clamp(min=1)),
            "geometry_anisotropy": anisotropy(z), "geometry_variance": float(z.var(0).mean())}
