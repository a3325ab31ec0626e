"""``lmjepa analyze``: embed a dataset with several models and measure their geometry side by side.

For each model and pooling it reports the six Predict-and-Reconstruct metrics (spectral
entropy, effective rank, stable rank, RankMe, alignment, uniformity) and the probe gap; on
two-view data also the LLM-JEPA Text→Code analyses (least-squares map error, singular values
of Enc(Text) − Enc(Code), t-SNE). Each model's result is cached in ``<out>/models/<label>.json``
keyed by the settings, so adding a model to the comparison never recomputes the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigBase, choice
from ..errors import ConfigError
from ..io import atomic_write_json
from ..models.loading import load_any, resolve_model_path
from . import geometry
from .data import AnalysisData, load_analysis_data
from .embed import POOLINGS, embed_sequences
from .probes import most_frequent_token, probe_gap

log = logging.getLogger(__name__)


@dataclass
class AnalyzeConfig(ConfigBase):
    """Settings of one ``lmjepa analyze`` comparison (YAML keys are these field names)."""

    PATH_FIELDS = ("data_dir",)

    models: dict[str, str] = field(default_factory=dict)  # label -> built-in name, HF folder or run folder
    dataset: str = "nlrx-synth"  # a task name, sst2, or a file: see analysis/data.py
    split: str = "test"
    data_dir: str | None = None
    max_examples: int = 1000
    max_length: int = 512
    layer: int = -1  # index into hidden_states: -1 = last layer (LLM-JEPA's Enc)
    poolings: list[str] = field(default_factory=lambda: list(POOLINGS))
    predictors: int = 0  # k predictor tokens appended to the Text view (0: Enc(Text) = last text token)
    view_format: str = choice("content", ("content", "chat"))  # two-view rows: bare content, or training's chat views
    batch_size: int = 32
    probes: bool = True
    probe_folds: int = 5
    tsne: bool = True
    tsne_pooling: str = choice("last", POOLINGS)
    seed: int = 0
    output_dir: str = "runs/analyze"

    def validate(self) -> None:
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad:
            raise ConfigError(f"config key 'poolings': {bad[0]!r} is not one of {list(POOLINGS)}")

    def key(self, model_path: str) -> str:
        """Hash of everything that changes one model's numbers (not the list of other models)."""
        settings = {k: v for k, v in asdict(self).items() if k not in ("models", "output_dir")}
        if settings["view_format"] == "content":  # the default, and the only views before the key existed:
            del settings["view_format"]           # results cached then stay valid
        return hashlib.sha256(json.dumps([settings, model_path], sort_keys=True).encode()).hexdigest()[:16]


def analyze_config(spec: str | Path | None, models: list[str], flags: dict) -> AnalyzeConfig:
    """The ``AnalyzeConfig`` of ``lmjepa analyze``: the YAML ``spec`` (if any, checked like every config),
    then ``models`` (``LABEL=MODEL`` or a run folder, labelled by its name), then the non-None ``flags``.
    Raises ConfigError naming the bad key."""
    from ..config import load_config

    config = load_config(spec, cls=AnalyzeConfig) if spec else AnalyzeConfig()
    named = dict(config.models)
    for text in models:
        label, sep, model = text.partition("=")
        if not sep:
            label, model = Path(text.rstrip("/")).name, text
        named[label] = model
    return config.with_overrides({"models": named, **{k: v for k, v in flags.items() if v is not None}})


def resolve_model(spec: str) -> str:
    """A run folder (its ``model/``), else ``resolve_model_path`` (a local folder, built-in name or cached
    hub id; ModelNotAvailable for anything else)."""
    run_model = Path(spec).expanduser() / "model"
    if (run_model / "config.json").is_file():
        return str(run_model)
    return resolve_model_path(spec)


def _special_ids(tokenizer) -> set[int]:
    added = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    return set(tokenizer.all_special_ids) | added


def tokenize(data: AnalysisData, tokenizer, predictor_ids: list[int], max_length: int,
             view_format: str = "content") -> dict:
    """Token ids per row: ``{"text": [...], "code": [...]}`` (two views; ``content``: the bare content views,
    so that the geometry is that of the content, not of a template prefix every row shares; ``chat``: the
    views LLM-JEPA training reads, ``jepa.view_format: chat``) or ``{"text": [...]}``."""
    if data.two_view:
        from ..data.views import encode_example

        if tokenizer.chat_template is None:
            raise ConfigError("two-view data is encoded through the chat template; this tokenizer has none")
        encoded = [encode_example(e, tokenizer, predictor_ids, max_length, view_format=view_format) for e in data.examples]
        return {"text": [e.text_ids for e in encoded], "code": [e.code_ids for e in encoded]}
    ids = tokenizer(data.texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return {"text": ids}


def measure(z, labels, token_targets=None, probes: bool = True, folds: int = 5, seed: int = 0,
            sigma=None) -> dict:
    """All metrics of one embedding set ``z`` ``(N, D)``: spectrum metrics, alignment over same-label
    pairs, uniformity (t = 2) and, with ``probes``, semantic/token probe accuracies and the probe gap.
    ``sigma``: the centred singular values of ``z`` if the caller already has them."""
    result = geometry.spectrum_metrics(z, sigma)
    result["alignment"] = geometry.alignment(z, labels)
    result["uniformity"] = geometry.uniformity(z)
    if probes and token_targets is not None:
        result.update(probe_gap(z, labels, token_targets, folds, seed))
    return result


def _tsne(z: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    reduced = PCA(n_components=min(50, *z.shape), random_state=seed).fit_transform(z)
    perplexity = min(30.0, (z.shape[0] - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)


def analyze_model(label: str, spec: str, data: AnalysisData, config: AnalyzeConfig) -> dict:
    """Embed ``data`` with one model and measure it; returns the JSON-ready result."""
    path = resolve_model(spec)
    started = time.perf_counter()
    model, tokenizer, predictor_ids = load_any(path, config.predictors, config.seed)
    ids = tokenize(data, tokenizer, predictor_ids, config.max_length, config.view_format)
    special = _special_ids(tokenizer)
    embed = lambda seqs, what: embed_sequences(  # noqa: E731
        model, seqs, tokenizer.pad_token_id, layer=config.layer, batch_size=config.batch_size,
        poolings=config.poolings, desc=f"{label}: {what}")
    views = {what: embed(seqs, what) for what, seqs in ids.items()}
    targets = [most_frequent_token(s, special) for seqs in ids.values() for s in seqs]
    labels = ["text"] * len(data) + ["code"] * len(data) if data.two_view else list(data.labels)
    result: dict = {"model": spec, "path": path, "n": len(data), "width": None, "poolings": {}, "text_code": {}}
    for pooling in config.poolings:
        z = np.concatenate([views[what][pooling] for what in ids])
        result["width"] = int(z.shape[1])
        sigma = geometry.singular_values(z)  # one SVD serves the metrics and the spectrum plot
        metrics = measure(z, labels, targets, config.probes, config.probe_folds, config.seed, sigma)
        metrics["spectrum"] = (sigma / max(sigma[0], 1e-12))[:200].tolist()  # σ_i / σ_1, for the plot
        result["poolings"][pooling] = metrics
        if data.two_view:
            text, code = views["text"][pooling], views["code"][pooling]
            analysis = geometry.linear_map_error(text, code, seed=config.seed)
            analysis["difference_singular_values"] = geometry.difference_singular_values(text, code).tolist()
            analysis.update(geometry.paired_retrieval(text, code))
            analysis["text_code_cosine"] = analysis["matched_cosine"]  # the key reports and caches read
            result["text_code"][pooling] = analysis
    if config.tsne and config.tsne_pooling in config.poolings:
        z = np.concatenate([views[what][config.tsne_pooling] for what in ids])
        result["tsne"] = {"pooling": config.tsne_pooling, "labels": labels, "xy": _tsne(z, config.seed).round(4).tolist()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def run_analysis(config: AnalyzeConfig) -> Path:
    """Analyse every model of ``config`` (cached per model) and write geometry.json, report.md, PNGs.

    Returns the path of report.md. Raises ConfigError if no model is given.
    """
    from .report import write_report

    if not config.models:
        raise ConfigError("name at least one model to analyse (--model LABEL=MODEL)")
    out = Path(config.output_dir)
    data = load_analysis_data(config.dataset, config.split, config.max_examples, config.data_dir)
    results = {}
    for label, spec in config.models.items():
        cache = out / "models" / f"{label}.json"
        key = config.key(resolve_model(spec))
        if cache.is_file() and json.loads(cache.read_text()).get("key") == key:
            log.info("%s: cached in %s", label, cache)
            results[label] = json.loads(cache.read_text())
            continue
        results[label] = {"key": key, **analyze_model(label, spec, data, config)}
        atomic_write_json(cache, results[label])
    settings = {k: v for k, v in asdict(config).items()}
    settings["source"] = data.source
    settings["two_view"] = data.two_view
    return write_report(settings, results, out)
