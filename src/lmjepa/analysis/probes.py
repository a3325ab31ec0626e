"""Linear probes on frozen embeddings, and the probe gap (Predict and Reconstruct eq. 16;
Conneau & Kiela 2018).

A probe is scikit-learn's ``StandardScaler → LogisticRegression`` scored by stratified k-fold
cross-validation accuracy (in [0, 1]); nothing here is trained by hand.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np


def probe_accuracy(z, labels, folds: int = 5, seed: int = 0, max_iter: int = 300, tol: float = 1e-3) -> dict:
    """Mean ``folds``-fold cross-validated accuracy of a linear probe predicting ``labels`` from ``z``.

    ``z``: ``(N, D)`` float; ``labels``: ``(N,)`` hashable. Classes with fewer than ``folds``
    rows cannot be stratified and are left out; the result says how many rows were kept.
    Returns ``{"accuracy", "n", "classes", "majority"}`` where ``majority`` is the share of the
    largest kept class (the accuracy a constant guess reaches). Raises ValueError if fewer than
    two classes remain.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    counts = Counter(labels.tolist())
    keep = np.array([counts[label] >= folds for label in labels.tolist()])
    z, labels = z[keep], labels[keep]
    classes = sorted(set(labels.tolist()), key=str)
    if len(classes) < 2:
        raise ValueError(f"a probe needs two classes with >= {folds} rows each; got {len(classes)}")
    # L2-regularised (C = 1) multinomial logistic regression on standardised features; tol 1e-3 keeps a
    # 2,000 × 576, 42-class synthetic probe at 20 s on 2 cores (sklearn defaults: 79 s; accuracy 0.276 vs 0.273).
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, tol=tol))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a probe stopped at max_iter is still a probe; do not flood the log
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(probe, z, labels, cv=splitter, scoring="accuracy")
    return {
        "accuracy": float(scores.mean()),
        "n": int(len(labels)),
        "classes": len(classes),
        "majority": max(Counter(labels.tolist()).values()) / len(labels),
    }


def most_frequent_token(token_ids: Sequence[int], special_ids: Iterable[int]) -> int:
    """The most frequent non-special token id of one sequence; ties go to the earliest occurrence.

    Raises ValueError if every token is special. This is the token probe's target (P&R eq. 16).
    """
    special = set(special_ids)
    tokens = [t for t in token_ids if t not in special]
    if not tokens:
        raise ValueError("sequence has no non-special token")
    counts = Counter(tokens)
    best = max(counts.values())
    return next(t for t in tokens if counts[t] == best)


def probe_gap(z, labels, token_targets, folds: int = 5, seed: int = 0) -> dict:
    """Δ_probe = acc_semantic − acc_token (P&R eq. 16), accuracies in [0, 1].

    ``labels``: the semantic target (task label, or text-vs-code for two-view data);
    ``token_targets``: each row's most frequent non-special token (``most_frequent_token``).
    Positive means the embedding predicts the meaning better than the surface token.
    """
    semantic = probe_accuracy(z, labels, folds, seed)
    token = probe_accuracy(z, token_targets, folds, seed)
    return {
        "semantic_probe": semantic["accuracy"],
        "token_probe": token["accuracy"],
        "probe_gap": semantic["accuracy"] - token["accuracy"],
        "token_probe_n": token["n"],
        "token_probe_classes": token["classes"],
        "semantic_majority": semantic["majority"],
        "token_majority": token["majority"],
    }
