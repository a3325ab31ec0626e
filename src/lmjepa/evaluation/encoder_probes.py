"""Frozen-encoder evaluation as in Predict and Reconstruct §4.2, plus its geometry metrics.

* SST-2 (single sentence): mean pooling → LayerNorm → Dropout(0.2) → Linear, trained with Adam on
  the frozen embeddings of ``train_full`` (first ``max_train`` rows), accuracy on ``dev``.
* MRPC (pairs): the same head on [s1; s2; |s1 − s2|; s1 ⊙ s2], trained on MSRP train, F1 of the
  paraphrase class (and accuracy) on MSRP test.
* STS-B: ŷ = a·cos(s1, s2) + b fitted by least squares on train; Spearman ρ on dev (in [−1, 1]).
* Geometry of SST-2 dev under the four poolings (``lmjepa.analysis``): spectral entropy, effective
  rank, stable rank, RankMe, alignment, uniformity, probe gap.
All accuracies and F1 are in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..analysis.analyze import measure
from ..analysis.embed import POOLINGS, embed_sequences
from ..analysis.probes import most_frequent_token
from ..data.jsonl import data_dir
from ..data.text import read_table


class ProbeHead(nn.Module):
    """LayerNorm → Dropout(0.2) → Linear (P&R §4.2)."""

    def __init__(self, width: int, classes: int, dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_head(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, epochs: int = 20, lr: float = 1e-3,
               batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """Train a ``ProbeHead`` on fixed features with Adam + cross-entropy; return test predictions ``(N,)``."""
    torch.manual_seed(seed)
    x = torch.tensor(x_train, dtype=torch.float32)
    y = torch.tensor(y_train, dtype=torch.long)
    head = ProbeHead(x.shape[1], int(y.max()) + 1)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            nn.functional.cross_entropy(head(x[index]), y[index]).backward()
            optimizer.step()
    head.eval()
    with torch.no_grad():
        return head(torch.tensor(x_test, dtype=torch.float32)).argmax(1).numpy()


def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[s1; s2; |s1 − s2|; s1 ⊙ s2], ``(N, 4D)`` (InferSent / P&R §4.2)."""
    return np.concatenate([a, b, np.abs(a - b), a * b], axis=1)


def f1_score(y_true: np.ndarray, y_pred: np.ndarray, positive: int = 1) -> float:
    from sklearn.metrics import f1_score as sk_f1

    return float(sk_f1(y_true, y_pred, pos_label=positive))


def sts_spearman(train: tuple, test: tuple) -> float:
    """Spearman ρ of ŷ = a·cos + b (a, b by least squares on ``train``) against gold scores on ``test``.

    ``train``/``test`` are ``(emb1, emb2, scores)``. A negative fitted slope reverses the ranking,
    so calibration matters for ρ only through its sign.
    """
    from scipy.stats import spearmanr

    def cosine(u, v):
        return np.sum(u * v, 1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)

    a, b = np.polyfit(cosine(train[0], train[1]), train[2], 1)
    return float(spearmanr(a * cosine(test[0], test[1]) + b, test[2]).statistic)


class Embedder:
    """Mean-pooled (or any pooling) last-layer embeddings of sentences with a frozen encoder."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 64):
        self.model, self.tokenizer, self.max_length, self.batch_size = model, tokenizer, max_length, batch_size

    def ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def __call__(self, texts: list[str], poolings=("mean",), desc: str = "embedding") -> dict[str, np.ndarray]:
        return embed_sequences(self.model, self.ids(texts), self.tokenizer.pad_token_id, batch_size=self.batch_size,
                               poolings=poolings, desc=desc)


def evaluate_encoder(model, tokenizer, folder: str | None = None, max_train: int = 8000, max_eval: int | None = None,
                     seed: int = 0, geometry: bool = True) -> dict:
    """All probes and (optionally) SST-2 geometry for one frozen encoder; returns a flat dict."""
    root = data_dir(folder)
    embed = Embedder(model, tokenizer)
    result: dict = {}

    sst_train = read_table(root / "glue" / "SST-2" / "train_full.tsv")[:max_train]
    sst_dev = read_table(root / "glue" / "SST-2" / "dev.tsv")[:max_eval]
    x_dev = embed([r["sentence"] for r in sst_dev], POOLINGS if geometry else ("mean",), "SST-2 dev")
    x_train = embed([r["sentence"] for r in sst_train], desc="SST-2 train")["mean"]
    y_dev = np.array([int(r["label"]) for r in sst_dev])
    predicted = train_head(x_train, np.array([int(r["label"]) for r in sst_train]), x_dev["mean"], seed=seed)
    result["sst2_accuracy"] = float((predicted == y_dev).mean())

    pairs = {split: read_table(root / "glue" / "MRPC" / f"msr_paraphrase_{split}.txt") for split in ("train", "test")}
    pairs["train"], pairs["test"] = pairs["train"][:max_train], pairs["test"][:max_eval]
    feats = {s: pair_features(embed([r["#1 String"] for r in rows], desc=f"MRPC {s}")["mean"],
                              embed([r["#2 String"] for r in rows], desc=f"MRPC {s}")["mean"]) for s, rows in pairs.items()}
    labels = {s: np.array([int(r["Quality"]) for r in rows]) for s, rows in pairs.items()}
    predicted = train_head(feats["train"], labels["train"], feats["test"], seed=seed)
    result["mrpc_f1"] = f1_score(labels["test"], predicted)
    result["mrpc_accuracy"] = float((predicted == labels["test"]).mean())

    sts = {s: read_table(root / "glue" / "STS-B" / f"{s}.tsv")[: (max_train if s == "train" else max_eval)]
           for s in ("train", "dev")}
    emb = {s: (embed([r["sentence1"] for r in rows], desc=f"STS-B {s}")["mean"],
               embed([r["sentence2"] for r in rows], desc=f"STS-B {s}")["mean"],
               np.array([float(r["score"]) for r in rows])) for s, rows in sts.items()}
    result["stsb_spearman"] = sts_spearman(emb["train"], emb["dev"])

    if geometry:
        special = set(tokenizer.all_special_ids)
        targets = [most_frequent_token(ids, special) for ids in embed.ids([r["sentence"] for r in sst_dev])]
        for pooling, z in x_dev.items():
            for key, value in measure(z, y_dev, targets, seed=seed).items():
                result[f"{pooling}/{key}"] = value
    return result
