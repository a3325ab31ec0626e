"""Frozen-encoder evaluation as in Predict and Reconstruct §4.2, plus its geometry metrics.

* SST-2 (single sentence): mean pooling → LayerNorm → Dropout(0.2) → Linear, trained with Adam on
  the frozen embeddings of ``train_full`` (first ``max_train`` rows), accuracy on ``dev``.
* MRPC (pairs): the same head on [s1; s2; |s1 − s2|; s1 ⊙ s2], trained on MSRP train, F1 of the
  paraphrase class (and accuracy) on MSRP test.
* STS-B: ŷ = a·cos(s1, s2) + b fitted by least squares on train; Spearman ρ on dev (in [−1, 1]).
* Geometry of SST-2 dev under the four poolings (``lmjepa.analysis``): spectral entropy, effective
  rank, stable rank, RankMe, alignment, uniformity, probe gap.
All accuracies and F1 are in [0, 1]; SST-2 and MRPC are means over several probe-head seeds.
``compare_encoders`` tests two encoders on the same rows (McNemar, paired bootstrap, Holm).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.jsonl import data_dir
from ..data.text import read_table
from ..io import atomic_write_json, atomic_write_text
from .analyze import measure
from .embed import POOLINGS, embed_sequences
from .probes import most_frequent_token


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


def sts_spearman(train: tuple, test: tuple, return_predictions: bool = False):
    """Spearman ρ of ŷ = a·cos + b (a, b by least squares on ``train``) against gold scores on ``test``.

    ``train``/``test`` are ``(emb1, emb2, scores)``. A negative fitted slope reverses the ranking,
    so calibration matters for ρ only through its sign. With ``return_predictions``: ``(ρ, ŷ (N,))``.
    """
    from scipy.stats import spearmanr

    def cosine(u, v):
        return np.sum(u * v, 1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)

    a, b = np.polyfit(cosine(train[0], train[1]), train[2], 1)
    predicted = a * cosine(test[0], test[1]) + b
    rho = float(spearmanr(predicted, test[2]).statistic)
    return (rho, predicted) if return_predictions else rho


class Embedder:
    """Mean-pooled (or any pooling) last-layer embeddings of sentences with a frozen encoder."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 64):
        self.model, self.tokenizer, self.max_length, self.batch_size = model, tokenizer, max_length, batch_size

    def ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def __call__(self, texts: list[str], poolings=("mean",), desc: str = "embedding") -> dict[str, np.ndarray]:
        return embed_sequences(self.model, self.ids(texts), self.tokenizer.pad_token_id, batch_size=self.batch_size,
                               poolings=poolings, desc=desc)


def _head_runs(x_train, y_train, x_test, seeds: list[int]) -> list[np.ndarray]:
    """Test predictions of one probe head per seed (the heads differ in init, dropout and batch order)."""
    return [train_head(x_train, y_train, x_test, seed=s) for s in seeds]


def _summary(name: str, values: list[float]) -> dict:
    out = {name: float(np.mean(values)), f"{name}_seeds": [float(v) for v in values]}
    if len(values) > 1:
        out[f"{name}_sd"] = float(np.std(values, ddof=1))
    return out


def evaluate_encoder(model, tokenizer, folder: str | None = None, max_train: int = 8000, max_eval: int | None = None,
                     seed: int = 0, geometry: bool = True, head_seeds: int = 5) -> dict:
    """All probes and (optionally) SST-2 geometry for one frozen encoder; returns a flat dict.

    SST-2 accuracy and MRPC F1/accuracy are means over ``head_seeds`` probe heads (seeds ``seed``,
    ``seed + 1``, …; ``*_sd`` and ``*_seeds`` give their spread); ``per_example`` keeps the first
    head's per-example correctness and the STS-B predictions, for ``compare_encoders``.
    Raises DataError if a GLUE file is absent.
    """
    root = data_dir(folder)
    embed = Embedder(model, tokenizer)
    seeds = [seed + i for i in range(max(1, head_seeds))]
    result: dict = {"head_seeds": len(seeds)}

    sst_train = read_table(root / "glue" / "SST-2" / "train_full.tsv")[:max_train]
    sst_dev = read_table(root / "glue" / "SST-2" / "dev.tsv")[:max_eval]
    x_dev = embed([r["sentence"] for r in sst_dev], POOLINGS if geometry else ("mean",), "SST-2 dev")
    x_train = embed([r["sentence"] for r in sst_train], desc="SST-2 train")["mean"]
    y_dev = np.array([int(r["label"]) for r in sst_dev])
    runs = _head_runs(x_train, np.array([int(r["label"]) for r in sst_train]), x_dev["mean"], seeds)
    result.update(_summary("sst2_accuracy", [float((p == y_dev).mean()) for p in runs]))
    per_example = {"sst2_correct": (runs[0] == y_dev).tolist()}

    pairs = {split: read_table(root / "glue" / "MRPC" / f"msr_paraphrase_{split}.txt") for split in ("train", "test")}
    pairs["train"], pairs["test"] = pairs["train"][:max_train], pairs["test"][:max_eval]
    feats = {s: pair_features(embed([r["#1 String"] for r in rows], desc=f"MRPC {s}")["mean"],
                              embed([r["#2 String"] for r in rows], desc=f"MRPC {s}")["mean"]) for s, rows in pairs.items()}
    labels = {s: np.array([int(r["Quality"]) for r in rows]) for s, rows in pairs.items()}
    runs = _head_runs(feats["train"], labels["train"], feats["test"], seeds)
    result.update(_summary("mrpc_f1", [f1_score(labels["test"], p) for p in runs]))
    result.update(_summary("mrpc_accuracy", [float((p == labels["test"]).mean()) for p in runs]))
    per_example["mrpc_correct"] = (runs[0] == labels["test"]).tolist()

    sts = {s: read_table(root / "glue" / "STS-B" / f"{s}.tsv")[: (max_train if s == "train" else max_eval)]
           for s in ("train", "dev")}
    emb = {s: (embed([r["sentence1"] for r in rows], desc=f"STS-B {s}")["mean"],
               embed([r["sentence2"] for r in rows], desc=f"STS-B {s}")["mean"],
               np.array([float(r["score"]) for r in rows])) for s, rows in sts.items()}
    result["stsb_spearman"], predicted = sts_spearman(emb["train"], emb["dev"], return_predictions=True)
    per_example.update(stsb_predicted=predicted.tolist(), stsb_gold=emb["dev"][2].tolist())

    if geometry:
        special = set(tokenizer.all_special_ids)
        targets = [most_frequent_token(ids, special) for ids in embed.ids([r["sentence"] for r in sst_dev])]
        for pooling, z in x_dev.items():
            for key, value in measure(z, y_dev, targets, seed=seed).items():
                result[f"{pooling}/{key}"] = value
    result["per_example"] = per_example
    return result


def majority_baselines(folder: str | None = None, max_train: int = 8000, max_eval: int | None = None) -> dict:
    """What a probe scores by always answering the training split's most frequent label (no encoder):
    ``sst2_accuracy``, ``mrpc_f1``, ``mrpc_accuracy`` on the same rows as ``evaluate_encoder``."""
    root = data_dir(folder)
    out = {}
    for name, path, test, column in (("sst2", "SST-2/train_full.tsv", "SST-2/dev.tsv", "label"),
                                     ("mrpc", "MRPC/msr_paraphrase_train.txt", "MRPC/msr_paraphrase_test.txt", "Quality")):
        train = np.array([int(r[column]) for r in read_table(root / "glue" / path)[:max_train]])
        gold = np.array([int(r[column]) for r in read_table(root / "glue" / test)[:max_eval]])
        guess = np.full_like(gold, np.bincount(train).argmax())
        out[f"{name}_accuracy"] = float((guess == gold).mean())
        if name == "mrpc":
            out["mrpc_f1"] = f1_score(gold, guess)
    return out


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair of ``(R, N)`` arrays (average ranks for ties)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    return (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))


def compare_encoders(base: dict, other: dict, resamples: int = 2000, seed: int = 0, correction: str = "holm") -> list[dict]:
    """Paired tests of ``other`` against ``base`` on the same evaluation rows (``evaluate_encoder`` results).

    SST-2 and MRPC: McNemar's exact test on the first probe head's per-example correctness (Δ is of
    the head means); STS-B: paired bootstrap over dev pairs of Δρ (95% CI; p = twice the smaller tail
    share of Δρ* on either side of 0). The three p-values are corrected together (Holm by default).
    Returns one row per probe: ``probe, delta, p, p_adjusted, reject`` and the test's details.
    Raises KeyError if a result lacks ``per_example`` (a cache written before it existed: re-probe).
    """
    from ..stats.paired import correct, mcnemar

    a, b = base["per_example"], other["per_example"]
    rows = []
    for probe, key, metric in (("SST-2", "sst2_correct", "sst2_accuracy"), ("MRPC", "mrpc_correct", "mrpc_f1")):
        test = mcnemar(a[key], b[key])
        rows.append({"probe": probe, "metric": metric, "delta": other[metric] - base[metric], "p": test["p"],
                     "test": f"McNemar exact: base right / other wrong {test['b']}, the reverse {test['c']}"})
    gold = np.asarray(a["stsb_gold"])
    if not np.array_equal(gold, np.asarray(b["stsb_gold"])):
        raise ValueError("the two STS-B results cover different dev rows")
    pa, pb = np.asarray(a["stsb_predicted"]), np.asarray(b["stsb_predicted"])
    index = np.random.default_rng(seed).integers(0, len(gold), size=(resamples, len(gold)))
    deltas = _spearman_rows(pb[index], gold[index]) - _spearman_rows(pa[index], gold[index])
    low, high = np.quantile(deltas, [0.025, 0.975])
    p = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    rows.append({"probe": "STS-B", "metric": "stsb_spearman", "delta": other["stsb_spearman"] - base["stsb_spearman"],
                 "p": float(p), "test": f"paired bootstrap ({resamples}): 95% CI [{low:+.3f}, {high:+.3f}]"})
    reject, adjusted = correct([r["p"] for r in rows], correction)
    for row, r, q in zip(rows, reject, adjusted):
        row.update(p_adjusted=q, reject=r)
    return rows


# --- comparing encoders: lmjepa probe ----------------------------------------------------------------

PROBE_COLUMNS = [("sst2_accuracy", "SST-2 acc", "{:.3f}"), ("mrpc_f1", "MRPC F1", "{:.3f}"),
                 ("stsb_spearman", "STS-B ρ", "{:.3f}"), ("mean/uniformity", "uniformity ↓", "{:.3f}"),
                 ("mean/effective_rank", "eff. rank", "{:.1f}"), ("mean/probe_gap", "probe gap", "{:+.3f}"),
                 ("max/uniformity", "uniformity (max) ↓", "{:.3f}"), ("max/effective_rank", "eff. rank (max)", "{:.1f}")]


def _probe_comparisons(rows: dict[str, dict]) -> str:
    """Markdown: each encoder against the first one, paired tests with Holm correction per pair."""
    names = list(rows)
    if len(names) < 2:
        return ""
    lines = [f"\nPaired against `{Path(names[0]).name}` on the same evaluation rows "
             "(Holm over the three probes of each encoder):\n",
             "| encoder | probe | Δ | test | p | p (Holm) | decision |", "|---|---|---|---|---|---|---|"]
    for name in names[1:]:
        if "per_example" not in rows[name] or "per_example" not in rows[names[0]]:
            lines.append(f"| {Path(name).name} | — | | cached result without per-example data: re-run with --force | | | |")
            continue
        for r in compare_encoders(rows[names[0]], rows[name]):
            decision = "differs" if r["reject"] else "no evidence of a difference"
            lines.append(f"| {Path(name).name} | {r['probe']} ({r['metric']}) | {r['delta']:+.3f} | {r['test']} | "
                         f"{r['p']:.3g} | {r['p_adjusted']:.3g} | {decision} |")
    return "\n".join(lines) + "\n"


def probe_runs(runs: list[str], data_dir=None, max_train: int = 8000, max_eval: int | None = None, seed: int = 0,
               head_seeds: int = 5, force: bool = False) -> dict[str, dict]:
    """``evaluate_encoder`` for each pretrain run folder (or encoder folder), cached in ``RUN/probes.json``
    (recomputed with ``force``). Returns run → results."""
    from ..models.loading import load_encoder, load_tokenizer

    rows = {}
    for run in runs:
        folder = Path(run) / "model" if (Path(run) / "model").is_dir() else Path(run)
        cache = Path(run) / "probes.json"
        if cache.is_file() and not force:
            rows[run] = json.loads(cache.read_text())
            continue
        model, tokenizer = load_encoder(str(folder)), load_tokenizer(str(folder), chat_template=False)
        rows[run] = evaluate_encoder(model, tokenizer, data_dir, max_train, max_eval, seed, head_seeds=head_seeds)
        atomic_write_json(cache, rows[run])
    return rows


def probe_table(rows: dict[str, dict], chance: dict) -> str:
    """Markdown: one row per encoder (probe means ± sd, geometry), the majority-class row, then the
    paired comparisons with the first encoder."""
    lines = ["| encoder | " + " | ".join(h for _, h, _ in PROBE_COLUMNS) + " |", "|---" * (len(PROBE_COLUMNS) + 1) + "|"]
    for run, r in rows.items():
        cells = [(f.format(r[k]) + (f" ± {r[k + '_sd']:.3f}" if k + "_sd" in r else "")) if k in r else ""
                 for k, _, f in PROBE_COLUMNS]
        lines.append(f"| {Path(run).name} | " + " | ".join(cells) + " |")
    lines.append("| *majority class (no encoder)* | " + " | ".join(
        f.format(chance[k]) if k in chance else "" for k, _, f in PROBE_COLUMNS) + " |")
    return "\n".join(lines) + "\n" + _probe_comparisons(rows)


def write_probe_report(runs: list[str], rows: dict[str, dict], chance: dict, out: str | Path | None) -> str:
    """The probe table, and with ``out`` also ``probes.md``, ``probes.json`` and ``training_curves.png``."""
    table = probe_table(rows, chance)
    if out:
        from .report import plot_training_curves

        histories = {Path(run).name: json.loads((Path(run) / "metrics.json").read_text()).get("log_history", [])
                     for run in runs if (Path(run) / "metrics.json").is_file()}
        if plot_training_curves(histories, Path(out) / "training_curves.png"):
            table += "\n![training curves](training_curves.png)\n"
        atomic_write_text(Path(out) / "probes.md", table)
        atomic_write_json(Path(out) / "probes.json", rows)
    return table
