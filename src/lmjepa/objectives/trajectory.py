"""Trajectory-shape terms: the hidden-state path over a sequence's content tokens (the audit's family 1).

Both read the full sequence's hidden states at one layer (no extra tokens, no predictor tokens) over
the user and the assistant content (``Step.spans``). As in the official ``stp.py``, the embedding of a
span [a, b) is the displacement h[b − 1] − h[a − 1] (from the token before the span to its last token).
Everything is vectorised over the batch: no Python loop per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Auxiliary, Needs, Step, register, span_masks
from ..seeds import draw_seed

_EPS = 1e-6  # keeps acos differentiable: cos is clamped to [−1 + ε, 1 − ε]


def _at(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """h (B, L, D), index (B,) long → h[b, index[b]] (B, D)."""
    return h[torch.arange(h.shape[0], device=h.device), index]


def random_spans(lengths: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A span [s, t) of each row's ``n`` content tokens, as stp.py ``get_s_t`` draws it: s uniform in
    [0, n), t uniform in [s + 1, n], the whole sequence (s = 0, t = n) excluded. ``lengths`` (B,) long,
    each ≥ 2. Returns (s, t), each (B,) long."""
    u = torch.rand(2, lengths.shape[0], generator=generator).to(lengths.device)
    s = (u[0] * lengths).floor().long().clamp(max=lengths - 1)
    count = lengths - s - (s == 0).long()  # choices for t: [s + 1, n] less t = n when s = 0
    t = s + 1 + (u[1] * count).floor().long().clamp(max=count - 1)
    return s, t


def stp_embeddings(h: torch.Tensor, spans: torch.Tensor, s: torch.Tensor, t: torch.Tensor):
    """(rest, patch) displacements of stp.py ``get_embeddings``, vectorised: the patch [s, t) of the
    concatenated user + assistant content, and the rest (before + after). h (B, L, D); spans (B, 4);
    s, t (B,) offsets. Returns two (B, D) tensors."""
    us, ue, a_s, ae = spans.unbind(1)
    nu = ue - us
    ps = torch.where(s < nu, us + s, a_s + s - nu)
    pe = torch.where(t < nu, us + t, a_s + t - nu)
    h_us, h_ue, h_as, h_ae, h_ps, h_pe = (_at(h, i - 1) for i in (us, ue, a_s, ae, ps, pe))
    in_answer = (ps >= a_s)[:, None]
    in_user = (pe <= ue)[:, None]
    before = torch.where(in_answer, h_ue - h_us + h_ps - h_as, h_ps - h_us)
    patch = torch.where(in_answer | in_user, h_pe - h_ps, h_ue - h_ps + h_pe - h_as)
    after = torch.where(in_user & ~in_answer, h_ue - h_pe + h_ae - h_as, h_ae - h_pe)
    return before + after, patch


def length_weights(n: torch.Tensor, patch: torch.Tensor, adjustment: str | None) -> torch.Tensor:
    """stp.py ``get_weights``: 1, ``cosine_like`` 2rp/(r² + p²) or ``jaccard_like`` 1 − |r − p|/(r + p),
    with p the patch length and r = n − p the rest's."""
    if adjustment is None:
        return torch.ones_like(n, dtype=torch.float32)
    rest, patch = (n - patch).float(), patch.float()
    if adjustment == "cosine_like":
        return 2 * rest * patch / (rest**2 + patch**2)
    return 1 - (rest - patch).abs() / (rest + patch)


@register
class STP(Auxiliary):
    """Semantic Tube Prediction (arXiv 2602.22617; galilai-group/llm-jepa ``stp.py``, ``--linear``).

    ``mode``: ``random_span`` (default): per row a random patch [s, t) of the user + assistant content;
    loss 1 − Σ w·cos(rest, patch) / Σ w with rest = before + after (``stp_embeddings``) and w from
    ``length_adjustment`` (None, ``cosine_like``, ``jaccard_like``); ``e2e``: 1 − mean cos(user
    displacement, answer displacement); ``mean``: 1 − mean cos(mean user state, mean answer state).
    Spans are drawn from a generator seeded by (seed, step, call), so every run draws the same. Rows
    with fewer than 2 content tokens are left out. Default weight 0.02 (the official default λ).
    """

    name = "stp"
    family = "trajectory"
    formula = "1 − cos(h(patch), h(before) + h(after)), h(a, b) = h_{b−1} − h_{a−1}"
    source = "STP, arXiv 2602.22617; llm-jepa stp.py --linear random_span|e2e|mean"
    PARAMS = {"mode": "random_span", "length_adjustment": None, "layer": -1}
    CHOICES = {"mode": ("random_span", "e2e", "mean"), "length_adjustment": (None, "cosine_like", "jaccard_like")}
    DEFAULT_WEIGHT = 0.02

    def __init__(self, **params):
        super().__init__(**params)
        self._calls: tuple[int, int] = (-1, 0)  # (step, calls in that step): micro-batches draw anew

    def needs(self) -> Needs:
        return Needs(layers=(self.params["layer"],))

    def _generator(self, step: Step) -> torch.Generator:
        last, calls = self._calls
        calls = calls + 1 if last == step.step else 0
        self._calls = (step.step, calls)
        return torch.Generator().manual_seed(draw_seed(step.seed, step.step, calls))

    def forward(self, step: Step) -> torch.Tensor:
        h, spans = step.hidden[self.params["layer"]], step.spans
        mode = self.params["mode"]
        if mode == "e2e":
            us, ue, a_s, ae = spans.unbind(1)
            rest, patch = _at(h, ue - 1) - _at(h, us - 1), _at(h, ae - 1) - _at(h, a_s - 1)
            return 1 - F.cosine_similarity(rest, patch, dim=-1).mean()
        if mode == "mean":
            masks = [m.to(h.dtype) for m in span_masks(spans, h.shape[1])]
            mean = [(m[..., None] * h).sum(1) / m.sum(1, keepdim=True).clamp(min=1) for m in masks]
            return 1 - F.cosine_similarity(mean[0], mean[1], dim=-1).mean()
        lengths = (spans[:, 1] - spans[:, 0]) + (spans[:, 3] - spans[:, 2])
        usable = lengths >= 2
        s, t = random_spans(lengths.clamp(min=2), self._generator(step))
        rest, patch = stp_embeddings(h, spans, s, t)
        weights = length_weights(lengths, t - s, self.params["length_adjustment"]).to(h.dtype) * usable
        cosine = F.cosine_similarity(rest, patch, dim=-1)
        return 1 - (cosine * weights).sum() / weights.sum().clamp(min=1e-12)


def trajectory_curvature(h: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, window: int = 1):
    """Per row: the sum of angles (radians) between consecutive displacements inside [start, end) and
    their count, as stp.py ``get_curvature`` (window 1: angle(h_{i−1} − h_{i−2}, h_i − h_{i−1}) for
    start < i < end); ``window`` w compares h_{j+w} − h_j with h_{j+2w} − h_{j+w}.
    h (B, L, D); starts, ends (B,) long. Returns (angle sums (B,), counts (B,))."""
    if h.shape[1] <= 2 * window:
        zero = torch.zeros(h.shape[0], device=h.device, dtype=h.dtype)
        return zero, zero
    d = h[:, window:] - h[:, :-window]  # d_j = h_{j+w} − h_j
    cos = F.cosine_similarity(d[:, :-window], d[:, window:], dim=-1)  # angle at j: d_j vs d_{j+w}
    angle = torch.acos(cos.clamp(-1 + _EPS, 1 - _EPS))
    j = torch.arange(angle.shape[1], device=h.device)[None]
    valid = ((j >= starts[:, None] - 1) & (j + 2 * window <= ends[:, None] - 1)).to(h.dtype)
    return (angle * valid).sum(1), valid.sum(1)


@register
class Curvature(Auxiliary):
    """Trajectory straightening (llm-jepa ``stp.py --linear curvature``): the mean angle between
    consecutive hidden-state displacements over the user and the assistant content, per row, then
    averaged over rows (a row without an angle counts 0, as in stp.py). ``window`` > 1: the local form
    over displacements of ``window`` tokens (lmjepa's construction)."""

    name = "curvature"
    family = "trajectory"
    formula = "mean_i ∠(h_i − h_{i−w}, h_{i+w} − h_i) over content tokens"
    source = "llm-jepa stp.py --linear curvature (get_curvature); Hénaff et al. 2019 (straightening)"
    PARAMS = {"window": 1, "layer": -1}

    def needs(self) -> Needs:
        return Needs(layers=(self.params["layer"],))

    def forward(self, step: Step) -> torch.Tensor:
        h, s = step.hidden[self.params["layer"]], step.spans
        w = int(self.params["window"])
        user, n_user = trajectory_curvature(h, s[:, 0], s[:, 1], w)
        answer, n_answer = trajectory_curvature(h, s[:, 2], s[:, 3], w)
        count = n_user + n_answer
        return torch.where(count > 0, (user + answer) / count.clamp(min=1), torch.zeros_like(count)).mean()
