"""Geometry metrics against closed forms and independent numpy/scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import i0

from lmjepa.analysis import geometry as g
from lmjepa.analysis.probes import most_frequent_token, probe_accuracy, probe_gap


def circle(n: int, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


@pytest.mark.parametrize("n", [4, 10, 50])
def test_identity_ranks_closed_form(n):
    eye = np.eye(n)
    # centring I_n leaves n - 1 equal singular values and one zero
    assert g.effective_rank(eye) == pytest.approx(n - 1, rel=1e-9)
    assert g.stable_rank(eye) == pytest.approx(n - 1, rel=1e-9)
    assert g.spectral_entropy(eye) == pytest.approx(np.log(n - 1) / np.log(n), rel=1e-9)
    # RankMe does not centre: all n singular values are 1 (ε shifts it by < 1e-3)
    assert g.rankme(eye) == pytest.approx(n, rel=1e-3)


def test_rank_one_matrix():
    rng = np.random.default_rng(0)
    z = np.outer(rng.normal(size=200), rng.normal(size=64))
    assert g.effective_rank(z) == pytest.approx(1.0, abs=1e-6)
    assert g.stable_rank(z) == pytest.approx(1.0, abs=1e-9)
    assert g.spectral_entropy(z) == pytest.approx(0.0, abs=1e-6)


def test_spectrum_metrics_match_eigenvalues_of_covariance():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 40)) * np.linspace(5, 0.1, 40)
    centred = z - z.mean(0)
    sigma = np.sqrt(np.clip(np.linalg.eigvalsh(centred.T @ centred)[::-1], 0, None))  # independent of the SVD
    p = sigma / sigma.sum()
    entropy = -np.sum(p * np.log(p))
    metrics = g.spectrum_metrics(z)
    assert metrics["effective_rank"] == pytest.approx(np.exp(entropy), rel=1e-8)
    assert metrics["spectral_entropy"] == pytest.approx(entropy / np.log(40), rel=1e-8)
    assert metrics["stable_rank"] == pytest.approx((sigma**2).sum() / sigma[0] ** 2, rel=1e-8)
    raw = np.sqrt(np.clip(np.linalg.eigvalsh(z.T @ z)[::-1], 0, None))
    q = raw / raw.sum() + 1e-7
    assert metrics["rankme"] == pytest.approx(np.exp(-np.sum(q * np.log(q))), rel=1e-6)
    assert 1 < metrics["stable_rank"] < metrics["effective_rank"] < 40


def test_uniformity_even_circle_closed_form_and_collapse():
    # For points uniform on S^1, E exp(-2|u-v|^2) = E exp(-4(1 - cos θ)) = e^-4 I0(4).
    assert g.uniformity(circle(2000)) == pytest.approx(-4 + np.log(i0(4.0)), abs=2e-3)
    # scale does not matter (rows are normalised) and a double loop agrees on a small set
    pts = circle(7, phase=0.3) * np.arange(1, 8)[:, None]
    unit = circle(7, phase=0.3)
    pairs = [np.exp(-2 * np.sum((unit[i] - unit[j]) ** 2)) for i in range(7) for j in range(i + 1, 7)]
    assert g.uniformity(pts) == pytest.approx(np.log(np.mean(pairs)), rel=1e-10)
    collapsed = np.tile([[0.6, 0.8]], (50, 1)) * np.linspace(1, 3, 50)[:, None]
    assert g.uniformity(collapsed) == pytest.approx(0.0, abs=1e-12)
    assert g.uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)


def test_alignment_closed_form():
    # class a: two points 90° apart (|u-v|² = 2); class b: identical points (0); one singleton class
    z = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [1.0, 1.0], [-1.0, 0.0]])
    labels = ["a", "a", "b", "b", "c"]
    assert g.alignment(z, labels) == pytest.approx((2.0 + 0.0) / 2)
    assert g.alignment(z, labels, alpha=1.0) == pytest.approx(np.sqrt(2) / 2)
    with pytest.raises(ValueError, match="same label"):
        g.alignment(z, ["a", "b", "c", "d", "e"])
    with pytest.raises(ValueError, match="shape"):
        g.alignment(z, ["a", "a"])


def test_linear_map_error_known_map_and_independent_noise():
    rng = np.random.default_rng(2)
    text = rng.normal(size=(800, 32))
    mapped = g.linear_map_error(text, text @ rng.normal(size=(32, 24)))
    assert mapped["lstsq_relative"] < 1e-10 and mapped["lstsq_heldout_relative"] < 1e-2
    assert not mapped["underdetermined"]
    # code independent of text: residual² ≈ (N - D)/N of the spread, held-out error ≈ 1
    noise = g.linear_map_error(text, rng.normal(size=(800, 24)))
    assert noise["lstsq_relative"] == pytest.approx(np.sqrt((800 - 32) / 800), abs=0.02)
    assert noise["lstsq_heldout_relative"] > 0.97
    # the paper's residual is the plain Frobenius norm of numpy's least-squares fit
    code = rng.normal(size=(800, 24)) + text[:, :24]
    x = np.linalg.lstsq(text, code, rcond=None)[0]
    assert g.linear_map_error(text, code)["lstsq_residual"] == pytest.approx(np.linalg.norm(text @ x - code))
    assert g.linear_map_error(text[:20], code[:20])["underdetermined"]


def test_difference_singular_values_match_numpy():
    rng = np.random.default_rng(3)
    text, code = rng.normal(size=(150, 20)), rng.normal(size=(150, 20))
    expected = np.linalg.svd(text - code, compute_uv=False)[:10]
    np.testing.assert_allclose(g.difference_singular_values(text, code, top=10), expected, rtol=1e-10)
    assert np.allclose(g.difference_singular_values(text, text), 0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        g.effective_rank(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        g.uniformity(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_most_frequent_token_skips_special_and_breaks_ties_by_first_occurrence():
    assert most_frequent_token([0, 5, 7, 7, 5, 0, 0, 0], special_ids={0}) == 5
    assert most_frequent_token([9, 3, 3, 9], special_ids=set()) == 9
    with pytest.raises(ValueError):
        most_frequent_token([1, 1], special_ids={1})


def test_probes_separable_vs_noise():
    rng = np.random.default_rng(4)
    labels = np.repeat(["x", "y"], 100)
    separable = rng.normal(size=(200, 8)) + (labels == "y")[:, None] * 6.0
    assert probe_accuracy(separable, labels)["accuracy"] == 1.0
    noise = rng.normal(size=(200, 8))
    result = probe_accuracy(noise, labels)
    assert 0.3 < result["accuracy"] < 0.7 and result["majority"] == 0.5
    # a class with fewer rows than folds is left out and counted
    rare = np.array(list(labels[:-2]) + ["z", "z"])
    assert probe_accuracy(separable, rare)["n"] == 198
    gap = probe_gap(separable, labels, token_targets=rng.integers(0, 2, size=200))
    assert gap["probe_gap"] == pytest.approx(gap["semantic_probe"] - gap["token_probe"]) and gap["probe_gap"] > 0.3


def test_paired_retrieval_against_a_loop_and_closed_forms():
    rng = np.random.default_rng(3)
    text, code = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    code[:10] = 2 * text[:10]  # ten rows whose Code is their Text, scaled: cos 1, retrieved
    got = g.paired_retrieval(text, code)
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    pairs = [[cos(text[i], code[j]) for j in range(30)] for i in range(30)]
    assert got["matched_cosine"] == pytest.approx(np.mean([pairs[i][i] for i in range(30)]))
    assert got["unmatched_cosine"] == pytest.approx(np.mean([pairs[i][j] for i in range(30) for j in range(30) if i != j]))
    assert got["retrieval_top1"] == pytest.approx(100 * np.mean([pairs[i][i] > max(pairs[i][j] for j in range(30) if j != i)
                                                                 for i in range(30)]))
    assert got["retrieval_top1"] >= 100 * 10 / 30
    # collapse: every row one direction (plus a shared offset) -> matched = unmatched = 1, nothing retrieved
    same = np.tile(rng.normal(size=(1, 8)), (20, 1))
    collapsed = g.paired_retrieval(same, 3 * same)
    assert collapsed["matched_cosine"] == pytest.approx(1) and collapsed["unmatched_cosine"] == pytest.approx(1)
    assert collapsed["retrieval_top1"] == 0.0
    # orthonormal, identical views: matched 1, unmatched 0, all retrieved
    eye = g.paired_retrieval(np.eye(6), np.eye(6))
    assert (eye["matched_cosine"], eye["unmatched_cosine"], eye["retrieval_top1"]) == pytest.approx((1, 0, 100))
    with pytest.raises(ValueError, match="same shape"):
        g.paired_retrieval(np.eye(6), np.eye(6)[:, :5])
