"""Representation geometry metrics (Predict and Reconstruct, Appendix D) and the LLM-JEPA
Text→Code analyses (LLM-JEPA §A.6: Fig. 6 t-SNE, Fig. 7 singular values, Table 10 least squares).

Every function takes embeddings as an ``(N, D)`` float array (numpy or anything ``np.asarray``
accepts) and works in float64. Singular values are of the *centred* matrix ``Z − mean(Z)``
unless a docstring says otherwise (RankMe follows Garrido et al. and does not centre).
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-12


def _matrix(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"embeddings must be an (N, D) array with N >= 2, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("embeddings contain NaN or inf")
    return z


def singular_values(z, center: bool = True) -> np.ndarray:
    """Singular values of ``z`` (centred over rows when ``center``), descending, shape ``(min(N, D),)``."""
    z = _matrix(z)
    if center:
        z = z - z.mean(axis=0, keepdims=True)
    return torch.linalg.svdvals(torch.from_numpy(z)).numpy()  # LAPACK gesdd, float64; ~2× numpy's speed


def _entropy(sigma: np.ndarray) -> float:
    p = sigma / max(sigma.sum(), EPS)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def spectral_entropy(z, sigma: np.ndarray | None = None) -> float:
    """H_spec = H(σ / ‖σ‖₁) / log D, in [0, 1] (P&R eq. 11; Garrido et al. 2023).

    σ: singular values of the centred ``z``; H(p) = −Σ pᵢ log pᵢ; D = embedding width. 1 means
    every direction carries the same spread. Note the paper normalises by log D even when N < D,
    in which case the maximum reachable value is log(N − 1) / log D.
    """
    width = np.asarray(z).shape[1]
    sigma = singular_values(z) if sigma is None else sigma
    return _entropy(sigma) / np.log(width) if width > 1 else 0.0


def effective_rank(z, sigma: np.ndarray | None = None) -> float:
    """erank(Z) = exp H(σ / ‖σ‖₁) (Roy & Vetterli 2007; P&R eq. 12), σ of the centred ``z``.

    Between 1 (one direction) and min(N − 1, D). Closed forms: a rank-1 matrix gives 1; the n×n
    identity, once centred, has n − 1 equal singular values and gives n − 1.
    """
    sigma = singular_values(z) if sigma is None else sigma
    return float(np.exp(_entropy(sigma)))


def stable_rank(z, sigma: np.ndarray | None = None) -> float:
    """srank(Z) = ‖Z‖_F² / ‖Z‖₂² = Σ σᵢ² / σ₁² (Vershynin 2018; P&R eq. 13), σ of the centred ``z``."""
    sigma = singular_values(z) if sigma is None else sigma
    return float((sigma**2).sum() / max(sigma[0] ** 2, EPS))


def rankme(z, eps: float = 1e-7) -> float:
    """RankMe = exp(−Σ pₖ log pₖ), pₖ = σₖ/‖σ‖₁ + ε, σ of the *uncentred* ``z`` (Garrido et al. 2023, eq. 1)."""
    sigma = singular_values(z, center=False)
    p = sigma / max(sigma.sum(), EPS) + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def normalize_rows(z) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), ``(N, D)`` float64."""
    z = _matrix(z)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), EPS)


def _squared_distances(u: np.ndarray) -> np.ndarray:
    """‖uᵢ − uⱼ‖² for unit rows: 2 − 2⟨uᵢ, uⱼ⟩, clipped at 0, ``(N, N)``."""
    return np.clip(2.0 - 2.0 * (u @ u.T), 0.0, 4.0)


def uniformity(z, t: float = 2.0) -> float:
    """U = log E_{u≠v} exp(−t ‖f̂(u) − f̂(v)‖²) over distinct pairs of L2-normalised rows (Wang & Isola 2020; P&R eq. 15).

    Ranges from −4t (antipodal pairs) to 0 (collapse); more negative is more uniform. Computed
    over all N(N−1)/2 distinct pairs with a log-sum-exp for stability.
    """
    u = normalize_rows(z)
    n = u.shape[0]
    d2 = _squared_distances(u)[np.triu_indices(n, k=1)]
    a = -t * d2
    peak = a.max()
    return float(peak + np.log(np.exp(a - peak).mean()))


def alignment(z, labels, alpha: float = 2.0) -> float:
    """A = E_{(u,v) same label, u≠v} ‖f̂(u) − f̂(v)‖^α over L2-normalised rows (Wang & Isola 2020; P&R eq. 14).

    Positive pairs are all distinct pairs sharing a label (P&R Appendix D; the paper prints the
    exponent outside the expectation, Wang & Isola put it inside, as here). Lower is tighter.
    Raises ValueError if no label occurs twice or ``labels`` has the wrong length.
    """
    u = normalize_rows(z)
    labels = np.asarray(labels)
    if labels.shape != (u.shape[0],):
        raise ValueError(f"labels must have shape ({u.shape[0]},), got {labels.shape}")
    same = labels[:, None] == labels[None, :]
    pairs = np.triu(same, k=1)
    if not pairs.any():
        raise ValueError("alignment needs at least one pair of rows with the same label")
    d2 = _squared_distances(u)[pairs]
    return float((d2 ** (alpha / 2.0)).mean())


def spectrum_metrics(z, sigma: np.ndarray | None = None) -> dict[str, float]:
    """The four spectrum metrics: spectral_entropy, effective_rank, stable_rank (from ``sigma``, the
    centred singular values, computed here if not given) and rankme (uncentred)."""
    sigma = singular_values(z) if sigma is None else sigma
    return {
        "spectral_entropy": spectral_entropy(z, sigma),
        "effective_rank": effective_rank(z, sigma),
        "stable_rank": stable_rank(z, sigma),
        "rankme": rankme(z),
    }


# --- LLM-JEPA analyses: how Enc(Text) maps to Enc(Code) ---------------------------------------------


def linear_map_error(text, code, holdout: float = 0.5, seed: int = 0) -> dict[str, float]:
    """Least-squares error of the best linear map Enc(Text)·X ≈ Enc(Code) (LLM-JEPA Table 10).

    ``text``, ``code``: ``(N, D)`` paired rows. Returns
      * ``lstsq_residual``: min_X ‖T·X − C‖_F on all rows — the paper's unnormalised number;
      * ``lstsq_relative``: that residual / ‖C − mean(C)‖_F (0 = exact linear map, 1 = no better
        than predicting the mean; scale-free, so models of different norms compare);
      * ``lstsq_heldout_relative``: a ridge map (standardised inputs, intercept, penalty chosen by
        scikit-learn's ``RidgeCV`` leave-one-out over 10⁻²…10⁴) fitted on a random ``1 − holdout``
        share of rows and scored on the rest: ‖T'X − C'‖_F / ‖C' − mean C'‖_F on held-out rows.
    When N ≤ D the in-sample fit is exact for almost any data (``lstsq_relative`` ≈ 0 says
    nothing), which is why the held-out number is reported; ``underdetermined`` flags it.
    Raises ValueError if the shapes differ.
    """
    t, c = _matrix(text), _matrix(code)
    if t.shape[0] != c.shape[0]:
        raise ValueError(f"text and code need the same number of rows, got {t.shape[0]} and {c.shape[0]}")
    x = torch.linalg.lstsq(torch.from_numpy(t), torch.from_numpy(c), driver="gelsy").solution.numpy()
    residual = float(np.linalg.norm(t @ x - c))
    spread = float(np.linalg.norm(c - c.mean(axis=0)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(t.shape[0])
    n_test = max(1, int(round(holdout * t.shape[0])))
    test, train = order[:n_test], order[n_test:]
    held = _ridge_heldout(t[train], c[train], t[test], c[test])
    return {
        "lstsq_residual": residual,
        "lstsq_relative": residual / max(spread, EPS),
        "lstsq_heldout_relative": held,
        "underdetermined": bool(t.shape[0] <= t.shape[1]),
    }


def _ridge_heldout(t_train, c_train, t_test, c_test) -> float:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    ridge.fit(t_train, c_train)
    residual = np.linalg.norm(ridge.predict(t_test) - c_test)
    return float(residual / max(np.linalg.norm(c_test - c_test.mean(axis=0)), EPS))


def difference_singular_values(text, code, top: int = 100) -> np.ndarray:
    """Top ``top`` singular values of Enc(Text) − Enc(Code), uncentred, descending (LLM-JEPA Fig. 7)."""
    t, c = _matrix(text), _matrix(code)
    if t.shape != c.shape:
        raise ValueError(f"text and code must have the same shape, got {t.shape} and {c.shape}")
    return singular_values(t - c, center=False)[:top]


def paired_retrieval(text, code) -> dict[str, float]:
    """Are paired views aligned beyond one shared direction? ``text``, ``code``: ``(N, D)`` paired rows
    (row i of each is one example). Returns
      * ``matched_cosine``: mean cos(tᵢ, cᵢ), the quantity the LLM-JEPA loss (cosine distance) drives to 1;
      * ``unmatched_cosine``: mean cos(tᵢ, cⱼ) over i ≠ j;
      * ``retrieval_top1`` (in percent): rows whose own cᵢ is strictly the most cosine-similar of all N codes
        to tᵢ (a tie is a miss).
    A collapse (every row the same direction) gives matched ≈ unmatched ≈ 1 and top-1 0 %; aligned,
    distinct views give matched ≫ unmatched and top-1 far above chance (100/N %). Raises ValueError if the
    shapes differ or N < 2."""
    t, c = normalize_rows(text), normalize_rows(code)
    if t.shape != c.shape:
        raise ValueError(f"text and code must have the same shape, got {t.shape} and {c.shape}")
    similarity = t @ c.T
    n = similarity.shape[0]
    matched = np.diag(similarity).copy()
    np.fill_diagonal(similarity, -np.inf)
    return {"matched_cosine": float(matched.mean()),
            "unmatched_cosine": float((np.sum(t.sum(axis=0) * c.sum(axis=0)) - matched.sum()) / (n * (n - 1))),
            "retrieval_top1": float(100.0 * np.mean(matched > similarity.max(axis=1)))}
