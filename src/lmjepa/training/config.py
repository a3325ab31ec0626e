"""The schema of a run (``lmjepa train`` / ``evaluate`` / ``sweep``): dataclasses mirrored by YAML.

A YAML file mirrors ``RunConfig``::

    name: nlrx-synth-smollm2
    task: nlrx-synth                  # data files, prompt, generation settings, metric (evaluation/tasks.py)
    model: {name: smollm2-135m-instruct, lora: null}
    data: {max_train_examples: 1600}  # data folder: data.data_dir, $LMJEPA_DATA_DIR or shared/data
    jepa: {lbd: 1.0, gamma: 1.0, predictors: 1, distance: cosine}
    train: {seed: 82, learning_rate: 5.0e-5, num_train_epochs: 1, batch_size: 8}
    eval: {max_new_tokens: 64, batch_size: 32}
    variants: {ntp: {jepa.lbd: 0.0}, llm-jepa: {}}

``variants`` names runs that differ from the base by a few overrides; ``lmjepa train`` runs each.
``tasks`` defines extra tasks by name (fields of ``lmjepa.evaluation.tasks.Task``); the task name
and its metric are checked by ``lmjepa.evaluation.tasks.check_config`` when the command line loads a
config. Configs written before the task registry (``data.dataset``, ``eval.metric``) still load:
the dataset name is mapped to its task and the metric comes from the task.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigBase, choice, load_config
from ..data.jsonl import SUBSETS
from ..data.packing import AUTO, MULTIVIEW, VIEW_MODES
from ..errors import ConfigError
from ..objectives import AUXILIARIES, check_specs
from ..objectives.objective import SPEC_KEYS
from ..objectives.jepa import DISTANCES

ATTN_IMPLEMENTATIONS = (None, "sdpa", "eager", "flash_attention_2")
PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = ("hf", "vllm")
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
            "none": None}  # report_to name -> the module it needs
LEGACY_DATASETS = {"synth": "nlrx-synth", "turk": "nlrx-turk", "gsm8k": "gsm8k", "spider": "spider",
                   "nq_open": "nq-open", "hellaswag": "hellaswag", "rotten_tomatoes": "rotten-tomatoes", "yelp": "yelp"}


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
    attn_implementation: str | None = choice(None, ATTN_IMPLEMENTATIONS)
    """``sdpa`` (None: the transformers default), ``eager`` or ``flash_attention_2`` (needs flash-attn)."""
    init_from: str | None = None
    """A finished run folder (a pretraining stage): start from its ``model/`` (weights and tokenizer)
    instead of ``name``. Refused before anything trains if that run has not finished."""


@dataclass
class DataConfig:
    data_dir: str | None = None
    """Data folder; falls back to ``$LMJEPA_DATA_DIR``, then ``shared/data`` beside a source checkout.
    The task's files are relative to it; written in a YAML file, a relative path is relative to that file."""
    train_file: str | None = None
    """Explicit training data (replaces the task's; the task still decides prompt and metric): a JSONL
    file, a ``datasets`` ``save_to_disk`` folder, a parquet or arrow file, or a dataset id in the local cache."""
    eval_file: str | None = None
    """Explicit evaluation data (replaces the task's), in any of the same forms."""
    columns: dict = field(default_factory=dict)
    """Your column names for lmjepa's fields: ``{messages: conv}`` or ``{text: question, code: query,
    system: instruction}``. Empty: the data already use lmjepa's names."""
    max_train_examples: int | None = None
    """Use the first N training examples (file order; the seed shuffles batches, not the subset)."""
    max_eval_examples: int | None = 200
    subset: str | None = choice(None, (None, *SUBSETS))
    """How the max_*_examples rows are picked: ``first``, or ``spread`` (evenly spaced over the file);
    None = the task's choice (``spread`` for rotten-tomatoes, whose files are sorted by label)."""
    max_length: int = 512
    """Token budget per sequence and per view (see ``lmjepa.data.views`` for the truncation policy)."""
    train_prompt: bool = False
    """The official LLM-JEPA code's condition: every token before the answer (system, user, template) is an
    NTP label too. Default: only the answer and its end-of-turn token are trained."""
    train_eos: bool = True
    """Train the end-of-turn token after the answer (the model learns to stop). ``false``: the official
    code's condition, where it is not trained."""


@dataclass
class JEPAConfig:
    lbd: float = 1.0
    """λ, weight of the JEPA term; 0 is exactly the NTP baseline."""
    gamma: float = 1.0
    """γ, weight of the NTP term (LLM-JEPA eq. 3)."""
    predictors: int = 1
    """k, number of predictor tokens appended to the Text view."""
    distance: str = choice("cosine", DISTANCES)
    """cosine (1 − cos), l2, mse or infonce."""
    temperature: float = 0.07
    """τ for infonce."""
    monitor: bool = True
    """With λ = 0, still log the JEPA distance (no gradient) on logging steps (paper §3.3)."""
    views: str = choice("separate", (*VIEW_MODES, MULTIVIEW, AUTO))
    """How views are computed: separate, packed or shared_prefix (see ``lmjepa.data.packing``); ``multiview``
    for ``{"views": [...]}`` data, each view predicting the next (``lmjepa.data.multiview``); ``auto``: the
    fastest exact mode for the device (``packing.resolve_views``: packed on CUDA, separate with the shared
    view prefix on CPU), said by ``lmjepa inspect`` and recorded in the row (``view_mode``). Not the default:
    the default's change would move every stored run's config hash."""
    view_format: str = choice("chat", ("chat", "content"))
    """``chat`` (the default since issue 14; the definition the paper's results were obtained with): the
    official code's views — each message rendered alone through the chat template (with its injected
    default system prompt), predictors descending. ``content``: the bare user / assistant content spans of
    the full sequence, predictors ascending (lmjepa's default before issue 14). ``lmjepa.data.views``;
    ``shared_prefix`` keeps its own Text view (the templated prompt)."""
    shared_view_prefix: bool = True
    """``separate`` mode: the tokens every view row of a batch begins with (chat views: the template and
    its system prompt) run once, and each view row attends to their keys and values — an exact saving
    (causal attention: a prefix's states do not depend on what follows). ``false``: every row recomputes
    them (the official code's cost). Off under gradient checkpointing, which drops caches. It pays on a CPU
    (1.78× NTP vs 2.33×, SmolLM2-135M, 2 cores) but not on a launch-bound GPU (H200, batch 8: 3.05× vs 1.83×;
    ``views: packed`` costs 1.01× there): ``benchmarks/gpu_results_h200.md``."""
    dropout: float = 0.0
    """α, JEPA loss dropout (paper §5.2): the share of optimizer steps that skip the JEPA term."""
    dropout_compensate: bool = False
    """Use λ/(1 − α) on the steps that keep the JEPA term, so its expected weight stays λ."""
    accumulation_scaling: str = choice("lmjepa", ("lmjepa", "official"))
    """``lmjepa``: NTP is the token mean of the whole accumulated batch and every auxiliary term is divided by
    the accumulation steps, so batch B equals B/2 × 2 accumulation. ``official``: the official
    ``RepresentationTrainer`` (LLM-JEPA ``finetune.py``) under the Trainer of transformers 4.55 / 5.x — the
    micro-batch loss ``γ·(micro-batch mean NTP) + Σ weight·term`` summed over micro-batches undivided, so the
    whole gradient, NTP included, is ≈ GA× lmjepa's (λ relative to γ unchanged; the clip at max_grad_norm meets
    it). Refused at load where it cannot act: GA 1, or no auxiliary term with weight > 0 (the official NTP-only
    runs use the stock Trainer, which ``lmjepa`` reproduces)."""
    grad_cosine_every: int = 0
    """Every N optimizer steps, log cos(∇ term, ∇ NTP term) over trainable parameters for every trained
    term (the audit's coupling measure; costs extra backward passes on those steps). 0 = off."""
    geometry_every: int = 0
    """Every N optimizer steps, log the held batch's geometry: answer-trajectory curvature, anisotropy
    (mean pairwise cosine), mean per-dimension variance (``objectives/monitors.py``). 0 = off."""


@dataclass
class TrainConfig:
    seed: int = 82
    """Controls initialisation (from-scratch weights, LoRA) and data order."""
    learning_rate: float = 5e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    """Per device (per process): the global batch is batch_size × processes × gradient_accumulation_steps."""
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    """Linear warm-up, as a fraction of the total steps."""
    lr_scheduler_type: str = "linear"
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    precision: str = choice("fp32", PRECISIONS)
    """``fp32`` (default), ``bf16`` or ``fp16`` mixed precision (fp16 needs a GPU; bf16 runs on CPUs too)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    report_to: list = field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers (``transformers`` names): ``tensorboard`` (default), ``wandb``, ``mlflow``, … —
    each must be installed. Under ``lmjepa sweep`` the run is tagged with its sweep, cell and seed."""
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
    backend: str = choice("hf", BACKENDS)
    """``hf``: batched greedy ``generate`` (default); ``vllm``: greedy vLLM on a GPU, the same prompts
    (``pip install 'lmjepa[vllm]'``)."""
    skip: bool = False
    """No evaluation after training (a pretraining stage): ``metrics.json`` holds the training summary."""


def legacy_specs(jepa: JEPAConfig) -> list[dict]:
    """The ``objectives`` list of a config with only a ``jepa:`` section: one ``llm-jepa`` term (λ, distance,
    temperature, loss dropout)."""
    return [{"name": "llm-jepa", "weight": jepa.lbd, "dropout": jepa.dropout, "compensate": jepa.dropout_compensate,
             "distance": jepa.distance, "temperature": jepa.temperature}]


@dataclass
class RunConfig(ConfigBase):
    """One run of ``lmjepa train`` / ``evaluate`` / ``sweep`` (see the module docstring)."""

    PATH_FIELDS = ("data.data_dir", "data.train_file", "data.eval_file", "model.init_from")
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
    objectives: list = field(default_factory=list)
    """Auxiliary terms ``[{name, weight, dropout?, compensate?, ...params}]`` (``lmjepa objectives`` lists
    them): L = γ·L_NTP + Σ weight·A. Empty: the one LLM-JEPA term of the ``jepa`` section (λ, distance,
    temperature, dropout). When given, ``jepa`` keeps the views (predictors, views), γ and the monitors."""
    variants: dict = field(default_factory=dict)

    @classmethod
    def upgrade(cls, values: dict) -> dict:
        """Map a pre-registry config (``data.dataset``, ``eval.metric``) onto ``task``."""
        values = {**values, "data": dict(values.get("data") or {}), "eval": dict(values.get("eval") or {})}
        dataset = values["data"].pop("dataset", None)
        values["eval"].pop("metric", None)
        if dataset is not None and "task" not in values:
            if dataset not in LEGACY_DATASETS:
                raise ConfigError(f"data.dataset {dataset!r} is replaced by task:; use one of the registered tasks")
            values["task"] = LEGACY_DATASETS[dataset]
        return values

    def auxiliary_specs(self) -> list[dict]:
        """The auxiliary terms as trained: ``objectives:`` when given, else the one LLM-JEPA term of ``jepa:``. The
        only place the two ways of writing an objective meet (everything downstream reads this, or
        ``objective_terms``)."""
        return self.objectives or legacy_specs(self.jepa)

    def objective_terms(self) -> list[dict]:
        """The resolved objective ``L = γ·L_NTP + Σ weight_i·A_i`` (issue 35), as recorded in result rows and
        printed by ``lmjepa inspect --json``: ``[{"name": "ntp", "weight": γ}, {"name": term, "weight": w,
        "dropout": α, "compensate": bool, <every parameter, defaults filled in>}, …]``. A term of weight 0 (an NTP
        cell's λ = 0) is listed: it is computed and logged, not trained."""
        terms = [{"name": "ntp", "weight": float(self.jepa.gamma)}]
        for spec in self.auxiliary_specs():
            cls = AUXILIARIES[spec["name"]]
            params = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
            terms.append({"name": spec["name"],
                          "weight": float(spec.get("weight", getattr(cls, "DEFAULT_WEIGHT", 1.0))),
                          "dropout": float(spec.get("dropout", 0.0)), "compensate": bool(spec.get("compensate", False)),
                          **cls.PARAMS, **params})
        return terms

    def llm_jepa_weight(self) -> float | None:
        """λ of the ``llm-jepa`` term, or None when the objective has none (an objectives-only run)."""
        return next((t["weight"] for t in self.objective_terms()[1:] if t["name"] == "llm-jepa"), None)

    def validate(self) -> None:
        """Numbers in range and variants that name known keys (checked at load, before any model)."""
        t, e, d, j = self.train, self.eval, self.data, self.jepa
        at_least_1 = lambda v: v is None or v >= 1  # noqa: E731  (None: the field's "all" / "the task's")
        checks = [("jepa.lbd", j.lbd >= 0, "≥ 0"), ("jepa.gamma", j.gamma >= 0, "≥ 0"),
                  ("jepa.predictors", j.predictors >= 0, "≥ 0"), ("jepa.dropout", 0 <= j.dropout < 1, "in [0, 1)"),
                  ("jepa.temperature", j.temperature > 0, "> 0"),
                  ("jepa.grad_cosine_every", j.grad_cosine_every >= 0, "≥ 0 (0: off)"),
                  ("jepa.geometry_every", j.geometry_every >= 0, "≥ 0 (0: off)"),
                  ("train.seed", t.seed >= 0, "≥ 0"), ("train.learning_rate", t.learning_rate > 0, "> 0"),
                  ("train.num_train_epochs", t.num_train_epochs > 0, "> 0"),
                  ("train.max_steps", t.max_steps == -1 or t.max_steps >= 1, "≥ 1, or -1 (from the epochs)"),
                  ("train.batch_size", t.batch_size >= 1, "≥ 1"),
                  ("train.gradient_accumulation_steps", t.gradient_accumulation_steps >= 1, "≥ 1"),
                  ("train.weight_decay", t.weight_decay >= 0, "≥ 0"),
                  ("train.warmup_ratio", 0 <= t.warmup_ratio < 1, "in [0, 1)"),
                  ("train.logging_steps", t.logging_steps >= 1, "≥ 1"), ("train.save_steps", t.save_steps >= 1, "≥ 1"),
                  ("train.save_total_limit", at_least_1(t.save_total_limit), "≥ 1 or null (keep all)"),
                  ("data.max_train_examples", at_least_1(d.max_train_examples), "≥ 1 or null (all rows)"),
                  ("data.max_eval_examples", at_least_1(d.max_eval_examples), "≥ 1 or null (all rows)"),
                  ("data.max_length", d.max_length >= 1, "≥ 1"),
                  ("eval.max_new_tokens", at_least_1(e.max_new_tokens), "≥ 1 or null (the task's)"),
                  ("eval.batch_size", e.batch_size >= 1, "≥ 1"),
                  ("eval.regex_timeout_s", e.regex_timeout_s > 0, "> 0"), ("eval.sql_timeout_s", e.sql_timeout_s > 0, "> 0"),
                  ("name", bool(self.name.strip()), "a non-empty string"),
                  ("output_dir", bool(self.output_dir.strip()), "a non-empty path")]
        for key, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"config key {key!r} must be {allowed}")
        if self.jepa.accumulation_scaling == "official":
            trained = [s for s in (self.objectives or [{"weight": self.jepa.lbd}]) if float(s.get("weight", 1.0)) > 0]
            if self.train.gradient_accumulation_steps <= 1 or not trained:
                raise ConfigError(
                    "config key 'jepa.accumulation_scaling': 'official' cannot act here: it needs "
                    "train.gradient_accumulation_steps > 1 and an auxiliary term with weight > 0 (got GA "
                    f"{self.train.gradient_accumulation_steps}, {len(trained)} weighted terms); the official NTP-only "
                    "runs use the stock Trainer, which 'lmjepa' reproduces")
        if self.objectives:
            check_specs(self.objectives)
            moved = [k for k in ("lbd", "distance", "temperature", "dropout", "dropout_compensate")
                     if getattr(self.jepa, k) != getattr(JEPAConfig(), k)]
            if moved:
                raise ConfigError(f"jepa.{moved[0]} is set, but objectives: is given; set it on the llm-jepa "
                                  "entry of objectives (weight, distance, temperature, dropout, compensate)")
        for tracker in self.train.report_to:
            if tracker not in TRACKERS:
                raise ConfigError(f"config key 'train.report_to': {tracker!r} is not one of {list(TRACKERS)}")
            if TRACKERS[tracker] and importlib.util.find_spec(TRACKERS[tracker]) is None:
                raise ConfigError(f"train.report_to: {tracker!r} is not installed (pip install {TRACKERS[tracker]})")
        if self.model.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("model.attn_implementation 'flash_attention_2' needs flash-attn, which is not "
                              "installed (pip install flash-attn, on a CUDA machine); use 'sdpa'")
        if self.eval.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ConfigError("eval.backend 'vllm' needs vLLM: pip install 'lmjepa[vllm]' (on a GPU machine)")
        for name, overrides in self.variants.items():
            try:
                self.without_variants().with_overrides(overrides or {})
            except ConfigError as err:
                raise ConfigError(f"variant {name!r}: {err}") from None


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """``load_config(path, overrides, cls=RunConfig)``. Raises ConfigError."""
    return load_config(path, overrides, cls=RunConfig)
