"""Every registered auxiliary term against an independent computation (numpy loops written from the
sources' formulas, closed forms, finite differences), and the objective's bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmjepa.errors import ConfigError
from lmjepa.objectives import AUXILIARIES, Objective, Step, check_specs
from lmjepa.objectives.distribution import uniformity, vicreg_terms
from lmjepa.objectives.sigreg import random_directions, sigreg
from lmjepa.objectives.fisher import decoder_kl, fisher_distance
from lmjepa.objectives.jepa import LLMJEPA, jepa_distance
from lmjepa.objectives.monitors import geometry_monitors
from lmjepa.objectives.trajectory import random_spans, stp_embeddings, trajectory_curvature

G = torch.Generator().manual_seed(0)


def test_registry_has_a_term_per_family():
    families = {cls.family for cls in AUXILIARIES.values()}
    assert {"trajectory", "distribution", "asymmetry", "fisher", "decoder"} - families == {"asymmetry"}
    assert LLMJEPA.CHOICES["target"] == ("live", "stop-grad", "ema")  # the asymmetry family: options of llm-jepa
    assert {"llm-jepa", "stp", "curvature", "sigreg", "vicreg", "uniformity", "fisher-jepa", "decoder-jepa"} <= set(AUXILIARIES)
    for cls in AUXILIARIES.values():
        assert cls.formula and cls.source and cls.__doc__


# --- SIGReg -------------------------------------------------------------------------------------------

def _sigreg_numpy(z, a, t_max=3.0, n_points=17):
    """The Epps–Pulley integrand summed by the trapezoid rule, one projection at a time."""
    t = np.linspace(0, t_max, n_points)
    dt = t_max / (n_points - 1)
    values = []
    for m in range(a.shape[1]):
        x = z @ a[:, m]
        integrand = [(np.mean(np.cos(tj * x)) - np.exp(-tj**2 / 2)) ** 2 + np.mean(np.sin(tj * x)) ** 2 for tj in t]
        weighted = [f * np.exp(-tj**2 / 2) for f, tj in zip(integrand, t)]
        trapezoid = dt * (sum(weighted) * 2 - weighted[0] - weighted[-1])  # Δt at the ends, 2Δt inside
        values.append(len(x) * trapezoid)
    return np.mean(values)


def test_sigreg_matches_the_trapezoid_formula_and_prefers_a_standard_gaussian():
    z = torch.randn(200, 8, generator=G, dtype=torch.float64)
    a = random_directions(8, 5, seed=3, dtype=torch.float64)
    assert torch.allclose(a.norm(dim=0), torch.ones(5, dtype=torch.float64))
    assert sigreg(z, a).item() == pytest.approx(_sigreg_numpy(z.numpy(), a.numpy()), rel=1e-10)
    gaussian = torch.randn(4000, 8, generator=G, dtype=torch.float64)
    null = sigreg(gaussian, a).item()  # O(1) under the null: N·|φ̂ − φ|² does not grow with N
    assert null < 10 and sigreg(3 * gaussian, a).item() > 100 * null  # a wrong scale is penalised, ∝ N
    with pytest.raises(ValueError, match="odd"):
        sigreg(z, a, n_points=16)


def test_distribution_statistics_ignore_bf16_autocast():
    """Under bf16 mixed precision (train.precision: bf16) the statistics equal their float32 values on the same
    inputs: a bf16 projection before cos/sin (SIGReg), covariance (VICReg) or logits (Fisher, decoder KL)
    would keep 8 significant bits, and pdist (uniformity) has no bf16 kernel."""
    z = torch.randn(64, 16, generator=G)
    a = random_directions(16, 32, seed=1)
    w, t = torch.randn(500, 16, generator=G), torch.randn(4, 16, generator=G)
    p = t + 0.01 * torch.randn(4, 16, generator=G)  # nearly equal states: a small KL, easily rounded away
    p16, t16 = p.to(torch.bfloat16), t.to(torch.bfloat16)  # e.g. an MLP predictor's output under autocast
    statistics = lambda: [sigreg(z, a), *vicreg_terms(z), uniformity(z), fisher_distance(p, t, w), decoder_kl(p, t, w),
                          *(jepa_distance(p16, t16, d) for d in ("cosine", "mse", "infonce"))]
    exact = statistics()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = statistics()
        assert (z @ a).dtype == torch.bfloat16  # autocast is on: a plain matmul here would be bf16
    for want, got in zip(exact, mixed):
        assert got.dtype == torch.float32 and got.item() == pytest.approx(want.item(), rel=1e-6)
    assert exact[-3].item() == pytest.approx((1 - F.cosine_similarity(p16.float(), t16.float())).mean().item())


# --- STP and curvature ----------------------------------------------------------------------------------

def _stp_loop(h, spans, s, t):
    """stp.py ``get_embeddings`` row by row (its three cases), numpy."""
    rests, patches = [], []
    for row, (us, ue, a_s, ae) in enumerate(spans):
        hs = h[row]
        ps = us + s[row] if s[row] + us < ue else a_s + s[row] - (ue - us)
        pe = us + t[row] if t[row] + us < ue else a_s + t[row] - (ue - us)
        e = {k: hs[v - 1] for k, v in dict(us=us, ue=ue, a_s=a_s, ae=ae, ps=ps, pe=pe).items()}
        if ps >= a_s:
            before, patch, after = e["ue"] - e["us"] + e["ps"] - e["a_s"], e["pe"] - e["ps"], e["ae"] - e["pe"]
        elif pe <= ue:
            before, patch, after = e["ps"] - e["us"], e["pe"] - e["ps"], e["ue"] - e["pe"] + e["ae"] - e["a_s"]
        else:
            before, patch, after = e["ps"] - e["us"], e["ue"] - e["ps"] + e["pe"] - e["a_s"], e["ae"] - e["pe"]
        rests.append(before + after)
        patches.append(patch)
    return np.stack(rests), np.stack(patches)


def test_stp_embeddings_match_the_official_case_analysis():
    h = torch.randn(64, 20, 6, generator=G, dtype=torch.float64)
    spans = torch.tensor([[3, 7, 10, 15]] * 32 + [[2, 5, 8, 18]] * 32)
    lengths = (spans[:, 1] - spans[:, 0]) + (spans[:, 3] - spans[:, 2])
    s, t = random_spans(lengths, torch.Generator().manual_seed(1))
    assert ((0 <= s) & (s < t) & (t <= lengths) & (t - s < lengths)).all()
    rest, patch = stp_embeddings(h, spans, s, t)
    want_rest, want_patch = _stp_loop(h.numpy(), spans.tolist(), s.tolist(), t.tolist())
    assert np.allclose(rest.numpy(), want_rest) and np.allclose(patch.numpy(), want_patch)
    nu = (spans[:, 1] - spans[:, 0])
    assert (s >= nu).any() and (t <= nu).any() and ((s < nu) & (t > nu)).any()  # all three cases drawn


def test_stp_term_modes_and_length_adjustment():
    h = torch.randn(4, 20, 6, generator=G, dtype=torch.float64)
    spans = torch.tensor([[3, 7, 10, 15]] * 4)
    step = Step(hidden={-1: h}, attention_mask=torch.ones(4, 20), spans=spans, step=5, seed=82)
    e2e = AUXILIARIES["stp"](mode="e2e")(step)
    rest, patch = h[:, 6] - h[:, 2], h[:, 14] - h[:, 9]
    assert e2e.item() == pytest.approx(1 - F.cosine_similarity(rest, patch, dim=-1).mean().item())
    mean = AUXILIARIES["stp"](mode="mean")(step)
    assert mean.item() == pytest.approx(1 - F.cosine_similarity(h[:, 3:7].mean(1), h[:, 10:15].mean(1), dim=-1).mean().item())
    term = AUXILIARIES["stp"](length_adjustment="cosine_like")
    value = term(step)
    again = AUXILIARIES["stp"](length_adjustment="cosine_like")(step)
    assert value.item() == again.item()  # seeded by (seed, step): reproducible
    s, t = random_spans(torch.full((4,), 9), torch.Generator().manual_seed((82 * 1_000_003 + 5) * 131))
    rest, patch = _stp_loop(h.numpy(), spans.tolist(), s.tolist(), t.tolist())
    r, p = (9 - (t - s)).double(), (t - s).double()
    w = (2 * r * p / (r**2 + p**2)).numpy()
    cos = (rest * patch).sum(1) / (np.linalg.norm(rest, axis=1) * np.linalg.norm(patch, axis=1))
    assert value.item() == pytest.approx(1 - (w * cos).sum() / w.sum())


def _curvature_loop(hs, start, end):
    """stp.py ``get_curvature``: Σ angle(h_{i−1} − h_{i−2}, h_i − h_{i−1}) for start < i < end, and the count."""
    total, count = 0.0, 0
    for i in range(start + 1, end):
        prev, curr = hs[i - 1] - hs[i - 2], hs[i] - hs[i - 1]
        total += math.acos(np.clip(prev @ curr / (np.linalg.norm(prev) * np.linalg.norm(curr)), -1, 1))
        count += 1
    return total, count


def test_curvature_matches_the_official_loop():
    h = torch.randn(3, 18, 5, generator=G, dtype=torch.float64)
    spans = torch.tensor([[2, 6, 9, 16], [3, 4, 7, 17], [1, 8, 10, 12]])
    value = AUXILIARIES["curvature"]()(Step(hidden={-1: h}, attention_mask=torch.ones(3, 18), spans=spans))
    rows = []
    for row, (us, ue, a_s, ae) in enumerate(spans.tolist()):
        (cu, nu), (ca, na) = _curvature_loop(h[row].numpy(), us, ue), _curvature_loop(h[row].numpy(), a_s, ae)
        rows.append((cu + ca) / (nu + na) if nu + na else 0.0)
    assert value.item() == pytest.approx(np.mean(rows), rel=1e-6)
    straight = torch.arange(18, dtype=torch.float64)[None, :, None] * torch.ones(1, 1, 5, dtype=torch.float64)
    sums, counts = trajectory_curvature(straight, torch.tensor([2]), torch.tensor([16]))
    # a straight line has no angle (up to the clamp that keeps acos differentiable: √(2ε) per angle)
    assert sums.item() == pytest.approx(0.0, abs=13 * math.sqrt(2e-6) * 1.01) and counts.item() == 13


# --- VICReg, uniformity -----------------------------------------------------------------------------------

def test_vicreg_and_uniformity_match_numpy():
    z = torch.randn(30, 6, generator=G, dtype=torch.float64) * torch.tensor([0.1, 0.5, 1, 2, 3, 0.01], dtype=torch.float64)
    v, c = vicreg_terms(z)
    zn = z.numpy()
    std = np.sqrt(zn.var(0, ddof=1) + 1e-4)
    cov = np.cov(zn, rowvar=False)
    assert v.item() == pytest.approx(np.mean(np.maximum(0, 1 - std)))
    assert c.item() == pytest.approx((np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / 6)
    unit = zn / np.linalg.norm(zn, axis=1, keepdims=True)
    pairs = [np.exp(-2 * np.sum((unit[i] - unit[j]) ** 2)) for i in range(30) for j in range(i + 1, 30)]
    assert uniformity(z).item() == pytest.approx(np.log(np.mean(pairs)))
    # bf16 inputs (a bf16 model, an MLP predictor under autocast) are scored in float32: pdist has no bf16 kernel
    half = z.to(torch.bfloat16)
    assert uniformity(half).dtype == torch.float32
    assert uniformity(half).item() == uniformity(half.to(torch.float32)).item()


# --- Fisher and decoder-visible JEPA ------------------------------------------------------------------------

def test_fisher_distance_is_the_second_order_term_of_the_kl():
    w = torch.randn(50, 8, generator=G, dtype=torch.float64)
    t = torch.randn(3, 8, generator=G, dtype=torch.float64)
    direction = torch.randn(3, 8, generator=G, dtype=torch.float64)
    for eps in (1e-2, 1e-3):
        p = t + eps * direction
        kl = F.kl_div(F.log_softmax(p @ w.T, -1), F.log_softmax(t @ w.T, -1), log_target=True, reduction="batchmean")
        assert fisher_distance(p, t, w).item() == pytest.approx(kl.item(), rel=10 * eps)
    assert fisher_distance(t, t, w).item() == 0.0


def test_decoder_kl_matches_numpy():
    w = torch.randn(20, 4, generator=G, dtype=torch.float64)
    p, t = torch.randn(5, 4, generator=G, dtype=torch.float64), torch.randn(5, 4, generator=G, dtype=torch.float64)
    logits_p, logits_t = (p @ w.T).numpy() / 2, (t @ w.T).numpy() / 2
    log_p = logits_p - np.log(np.exp(logits_p).sum(1, keepdims=True))
    log_t = logits_t - np.log(np.exp(logits_t).sum(1, keepdims=True))
    expected = np.mean(np.sum(np.exp(log_t) * (log_t - log_p), axis=1))
    assert decoder_kl(p, t, w, temperature=2.0).item() == pytest.approx(expected)
    step = Step(pred=p, target=t, lm_head=w)
    assert AUXILIARIES["decoder-jepa"](temperature=2.0)(step).item() == pytest.approx(expected)


# --- llm-jepa options and the objective ----------------------------------------------------------------------

def test_mlp_predictor_starts_as_the_identity_and_trains():
    p, t = torch.randn(4, 8, generator=G), torch.randn(4, 8, generator=G)
    term = LLMJEPA(hidden_size=8, predictor="mlp")
    value = term(Step(pred=p, target=t))
    assert value.item() == pytest.approx(jepa_distance(p, t).item(), rel=1e-6)
    value.backward()
    assert term.head[2].weight.grad.abs().sum() > 0


def test_specs_are_checked_with_the_entry_and_key_named():
    for specs, message in [([{"name": "sigrej"}], r"objectives\[0\].name: 'sigrej' is not one of"),
                           ([{"name": "stp", "weight": -0.1}], r"objectives\[0\].weight must be a number ≥ 0"),
                           ([{"name": "stp", "mode": "random"}], r"objectives\[0\].mode: 'random' is not one of"),
                           ([{"name": "sigreg", "slices": 3}], r"objectives\[0\]: unknown parameter 'slices'"),
                           ([{"weight": 1}], r"objectives\[0\] needs a name"),
                           ([{"name": "llm-jepa", "dropout": 1.0}], r"dropout must be in \[0, 1\)")]:
        with pytest.raises(ConfigError, match=message):
            check_specs(specs)


def test_dropout_is_per_term_reproducible_and_compensated():
    objective = Objective([{"name": "llm-jepa", "weight": 1.0, "dropout": 0.5},
                           {"name": "stp", "weight": 0.1, "dropout": 0.5, "compensate": True}])
    decisions = [objective.dropped(82, step) for step in range(200)]
    assert decisions == [objective.dropped(82, step) for step in range(200)]  # every process draws the same
    share = np.mean(decisions, axis=0)
    assert 0.4 < share[0] < 0.6 and 0.4 < share[1] < 0.6
    assert np.mean([a != b for a, b in decisions]) > 0.3  # the two terms draw independently
    assert objective.keys == ["jepa_loss", "stp_loss"]
    h = torch.randn(2, 12, 4, generator=G)
    step = Step(hidden={-1: h}, attention_mask=torch.ones(2, 12), spans=torch.tensor([[1, 4, 6, 10]] * 2),
                pred=torch.randn(2, 4, generator=G), target=torch.randn(2, 4, generator=G))
    parts = objective(torch.tensor(1.0), [False, True], step)
    assert parts.loss.item() == pytest.approx(1.0 + 0.1 / 0.5 * parts.values["stp_loss"].item())


def test_geometry_monitors_match_numpy():
    h = torch.randn(2, 10, 4, generator=G, dtype=torch.float64)
    spans = torch.tensor([[1, 3, 5, 9], [2, 4, 6, 10]])
    mask = torch.ones(2, 10)
    out = geometry_monitors(h, spans, mask)
    z = np.concatenate([h[0, [1, 2, 5, 6, 7, 8]].numpy(), h[1, [2, 3, 6, 7, 8, 9]].numpy()])
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    cos = unit @ unit.T
    assert out["geometry_anisotropy"] == pytest.approx((cos.sum() - 12) / (12 * 11))
    assert out["geometry_variance"] == pytest.approx(np.mean(z.var(0, ddof=1)))
    loops = [_curvature_loop(h[r].numpy(), a, b) for r, (a, b) in enumerate([(5, 9), (6, 10)])]
    assert out["geometry_curvature"] == pytest.approx(sum(c for c, _ in loops) / sum(n for _, n in loops))
