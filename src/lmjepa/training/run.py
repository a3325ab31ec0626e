"""Training one run: data → model → JEPATrainer → final model, in a run folder (``run_folder.py``).

Evaluation follows in ``lmjepa.pipeline.run.train_and_evaluate``; this module never evaluates.
The data are read and encoded — and so checked, with ``file:line`` errors — before the model is
loaded.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
from pathlib import Path

import torch
from transformers import TrainingArguments

from ..data.jsonl import Example, read_examples, take
from ..data.multiview import MultiViewCollator, encode_views, read_views
from ..data.packing import JEPACollator, resolve_views, view_mode
from ..data.tasks import Task, find_task
from ..data.views import encode_dataset
from ..errors import ConfigError, DataError, RunFolderError
from ..models.loading import add_predictor_tokens, load_model, load_tokenizer, resolve_model_path
from ..objectives import Objective
from . import run_folder
from .config import RunConfig
from .trainer import JEPATrainer, NonFiniteLossError
from ..seeds import data_order_seed, init_seed

log = logging.getLogger("lmjepa")


def task_of(config: RunConfig) -> Task:
    """The config's task (registered, or defined under ``tasks:``). Raises ConfigError if unknown."""
    return find_task(config.task, config.tasks)


def data_file(config: RunConfig, split: str) -> Path:
    """The JSONL file for ``split`` (``train``/``test``): the explicit path, else the task's file."""
    explicit = config.data.train_file if split == "train" else config.data.eval_file
    if explicit:
        return Path(explicit)
    return task_of(config).file(split, config.data.data_dir)


def load_examples(config: RunConfig, split: str) -> list[Example]:
    """The split's examples (``max_*_examples`` of them, picked per ``data.subset`` or the task's
    ``subset``); rows without a system turn get the task's prompt. Raises DataError (file:line)."""
    limit = config.data.max_train_examples if split == "train" else config.data.max_eval_examples
    task = task_of(config)
    how = config.data.subset or task.subset
    source = data_file(config, split)
    examples = take(read_examples(source, limit if how == "first" else None, config.data.columns or None,
                                  split="train" if split == "train" else "test"), limit, how)
    if task.system_prompt is None:
        return examples
    return [e if e.system is not None else dataclasses.replace(e, system=task.system_prompt) for e in examples]


def resolved_views(config: RunConfig) -> tuple[str, str]:
    """``(mode, why)``: the view mode this run uses on this machine (``jepa.views``, ``auto`` resolved by
    ``data.packing.resolve_views`` for the device training will use). The one place a run's mode is chosen."""
    device = "cuda" if torch.cuda.is_available() and not config.train.extra.get("use_cpu") else "cpu"
    return resolve_views(config.jepa.views, device, config.model.attn_implementation)


def with_resolved_views(config: RunConfig) -> RunConfig:
    """``config`` with ``jepa.views`` resolved (``auto`` → a concrete mode); the config itself otherwise."""
    mode, _ = resolved_views(config)
    return config if mode == config.jepa.views else config.with_overrides({"jepa.views": mode})


def check_data(config: RunConfig) -> None:
    """Read every data file a run will read (the training rows as its view mode reads them, the test rows unless
    ``eval.skip``), before anything is written or a model loads. Raises DataError naming file:line, ConfigError
    for a view mode the objective cannot use."""
    if view_mode(resolved_views(config)[0]).multiview:
        others = sorted({spec["name"] for spec in config.objectives} - {"llm-jepa"})
        if others or config.jepa.geometry_every:
            raise ConfigError(f"jepa.views: multiview trains NTP and the llm-jepa term only (each view predicts the "
                              f"next); not {others or 'jepa.geometry_every'}")
        read_views(data_file(config, "train"), config.data.max_train_examples)
    else:
        load_examples(config, "train")
    if not config.eval.skip:
        load_examples(config, "test")


def evaluation_data_dir(config: RunConfig) -> str | None:
    """The data folder for task resources beyond the JSONL (Spider databases), if one is set."""
    return config.data.data_dir or os.environ.get("LMJEPA_DATA_DIR")


def model_path(config: RunConfig) -> str:
    """The weights a run starts from: the ``model/`` of the finished run ``model.init_from`` (a two-stage
    protocol's pretraining stage), else ``model.name`` resolved. Raises RunFolderError if that run has not
    finished (no ``metrics.json`` or no ``model/``), ModelNotAvailable for an unknown name."""
    if config.model.init_from:
        run = Path(config.model.init_from)
        if not (run / "metrics.json").is_file() or not (run / "model" / "config.json").is_file():
            raise RunFolderError(f"model.init_from {run}: that run has not finished (no metrics.json or model/); "
                                 "train the pretraining stage first — nothing was trained")
        return str(run / "model")
    return resolve_model_path(config.model.name)


def build_tokenizer(config: RunConfig):
    """The model's tokenizer with the k predictor tokens: ``(tokenizer, predictor ids)``."""
    tokenizer = load_tokenizer(model_path(config))
    return tokenizer, add_predictor_tokens(tokenizer, config.jepa.predictors)


def encoding_options(config: RunConfig) -> dict:
    """The config's view format and training conditions, as ``encode_dataset`` options."""
    return {"view_format": config.jepa.view_format, "train_prompt": config.data.train_prompt,
            "train_eos": config.data.train_eos}


def inspect_rows(config: RunConfig, rows: int = 3) -> list[dict]:
    """Exactly what training sees for the first ``rows`` training rows, decoded (special tokens kept):
    ``full`` sequence, ``trained`` tokens (labels ≠ −100), ``text_view`` / ``code_view`` and the tokens
    at which Enc(Text) and Enc(Code) are read (``enc_text_token``, ``enc_code_token``). No model loads.
    Multi-view data: per row ``views`` (each view's row), ``trained`` and the Enc tokens of each pair
    (``enc_source_token`` of views 1..n−1, ``enc_target_token`` of views 2..n).
    ``shared_prefix`` reads Enc(Text) in the full sequence: its ``text_view`` is the templated prompt."""
    tokenizer, predictor_ids = build_tokenizer(config)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    trained = lambda ids, labels: decode([i for i, l in zip(ids, labels) if l != -100])  # noqa: E731
    mode = view_mode(resolved_views(config)[0])
    if mode.multiview:  # one entry per view: its row, its NTP tokens, its Enc tokens
        out = []
        for views in read_views(data_file(config, "train"), rows):
            f = encode_views(views, tokenizer, predictor_ids, config.data.max_length)
            out.append({"views": [decode(r) for r in f["rows"]],
                        "trained": [trained(r, lab) for r, lab in zip(f["rows"], f["labels"])],
                        "enc_source_token": [decode(r[e[0]:e[0] + 1]) for r, e in zip(f["rows"][:-1], f["enc"][:-1])],
                        "enc_target_token": [decode(r[e[1]:e[1] + 1]) for r, e in zip(f["rows"][1:], f["enc"][1:])]})
        return out
    examples = load_examples(config, "train")[:rows]
    features, _ = encode_dataset(examples, tokenizer, predictor_ids, config.data.max_length, **encoding_options(config))
    k, out = config.jepa.predictors, []
    for f in features:
        text = f["input_ids"][: f["prompt_len"]] + f["text_ids"][len(f["text_ids"]) - k:] \
            if mode.text_is_prompt else f["text_ids"]
        out.append({"full": decode(f["input_ids"]), "trained": trained(f["input_ids"], f["labels"]),
                    "text_view": decode(text), "enc_text_token": decode(text[-1:]),
                    "code_view": decode(f["code_ids"]), "enc_code_token": decode(f["code_ids"][-1:])})
    return out


def build_model(config: RunConfig, tokenizer, predictor_ids: list[int]):
    """The (optionally LoRA-wrapped) model for ``tokenizer``."""
    model = load_model(
        model_path(config),
        tokenizer,
        from_scratch=config.model.from_scratch,
        config_overrides=config.model.config_overrides,
        seed=config.train.seed,
        attn_implementation=config.model.attn_implementation,
    )
    if config.model.lora:
        from peft import LoraConfig, get_peft_model

        lora = dict(config.model.lora)
        torch.manual_seed(init_seed(config.train.seed))
        peft_config = LoraConfig(
            r=lora.pop("r", 16),
            lora_alpha=lora.pop("alpha", 32),
            lora_dropout=lora.pop("dropout", 0.0),
            target_modules=lora.pop("target_modules", "all-linear"),
            task_type="CAUSAL_LM",
            # the new predictor-token rows must train under LoRA (the reference leaves them frozen)
            trainable_token_indices={"embed_tokens": predictor_ids} if predictor_ids else None,
            **lora,
        )
        model = get_peft_model(model, peft_config)
    return model


def build_model_and_tokenizer(config: RunConfig):
    """Tokenizer with the k predictor tokens, and the (optionally LoRA-wrapped) model."""
    tokenizer, predictor_ids = build_tokenizer(config)
    return build_model(config, tokenizer, predictor_ids), tokenizer, predictor_ids


# transformers 5.2x renamed ``gradient_checkpointing`` (the old name warns); our config key keeps the old name.
CHECKPOINTING = ("activation_checkpointing" if "activation_checkpointing" in inspect.signature(TrainingArguments).parameters
                 else "gradient_checkpointing")


def native_cpu_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AVX512-BF16 or AMX tiles), without which autocast emulates
    bf16 (``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``; False if torch lacks them)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def check_precision(precision: str) -> None:
    """Refuse a precision that cannot run well here, before any data or model is loaded. Raises
    ConfigError for ``fp16`` without a GPU, and for ``bf16`` on a CPU without native bf16 units: autocast
    then emulates bf16, and a SmolLM2-135M step measured 130.6 s against 5.9 s in fp32 (22×) on an AVX2
    CPU (``benchmarks/precision_cost_results_cpu.md``); with them it is 1.7× faster than fp32."""
    if torch.cuda.is_available():
        return
    if precision == "fp16":
        raise ConfigError("train.precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on a CPU")
    if precision == "bf16" and not native_cpu_bf16():
        raise ConfigError(f"train.precision 'bf16' on this CPU ({torch.backends.cpu.get_cpu_capability()}, no "
                          "AVX512-BF16 or AMX) is emulated, about 22× slower than fp32 a step; set "
                          "train.precision: fp32 (or run where bf16 is native: a GPU, or a CPU with AVX512-BF16)")


def training_arguments(config, out: Path) -> TrainingArguments:
    """``TrainingArguments`` from ``config.train`` (a ``TrainConfig``): checkpoints in ``out``."""
    t = config.train
    extra = dict(t.extra)
    # Under `accelerate launch` without GPUs, the Trainer sets up multi-CPU DDP (gloo) only with use_cpu.
    # (and bf16 on a CPU only with use_cpu)
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    extra.setdefault("use_cpu", (multi or t.precision == "bf16") and not torch.cuda.is_available())
    # Every trainable parameter takes part in every step (a dropped JEPA term still runs the full model).
    extra.setdefault("ddp_find_unused_parameters", False)
    extra.setdefault("dataloader_pin_memory", torch.cuda.is_available())  # no warning on a CPU
    if t.precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("train.precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on a CPU")
    sweep = os.environ.get("LMJEPA_SWEEP")
    if sweep:  # run tags for experiment trackers: the sweep, cell and seed
        extra.setdefault("run_name", f"{sweep}/{os.environ.get('LMJEPA_CELL')}/seed-{os.environ.get('LMJEPA_SEED')}")
        os.environ.setdefault("WANDB_RUN_GROUP", sweep)
        os.environ.setdefault("WANDB_TAGS", f"sweep:{sweep},cell:{os.environ.get('LMJEPA_CELL')},"
                                            f"seed:{os.environ.get('LMJEPA_SEED')}")
        os.environ.setdefault("MLFLOW_TAGS", json.dumps({"sweep": sweep, "cell": os.environ.get("LMJEPA_CELL"),
                                                         "seed": os.environ.get("LMJEPA_SEED")}))
    return TrainingArguments(
        output_dir=str(out),  # checkpoints: out/checkpoint-N; TensorBoard: out/runs/
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler_type,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=data_order_seed(t.seed),
        report_to=[r for r in t.report_to if r != "none"] or "none",
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        **{CHECKPOINTING: t.gradient_checkpointing},
        remove_unused_columns=False,  # keep the view columns
        dataloader_num_workers=0,
        **extra,
    )


OBJECTIVE_ATTRIBUTE = "lmjepa_objective"


def build_objective(config: RunConfig, model) -> Objective:
    """The config's objective (``objectives:``, or the one LLM-JEPA term of ``jepa:``). A term with
    parameters of its own (``llm-jepa`` with ``predictor: mlp``) is attached to the model while it
    trains, registered as a submodule (``add_module``), so the optimizer, DDP and checkpoints see them."""
    specs = config.auxiliary_specs()
    objective = Objective(specs, config.jepa.gamma, model.config.hidden_size if hasattr(model, "config") else None)
    if any(p.requires_grad for p in objective.parameters()):
        model.add_module(OBJECTIVE_ATTRIBUTE, objective)
    return objective


def environment(device) -> dict:
    """Where a run trained, for its row: the versions that change numerics and the processor. Runs of one seed on
    two machines (or two releases) are not bit-identical; this says which differ."""
    import platform

    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": str(device), "cpu": cpu,
            "threads": torch.get_num_threads()}


def effective_conditions(config: RunConfig, processes: int = 1) -> dict:
    """What a run's training actually did (issue 33), for its result row: per-device batch, GA, processes,
    global batch (rows per optimizer step), each term's effective weight on the gradient relative to lmjepa's
    normalisation (NTP: the token mean of the global batch; a term: its mean over the optimizer step), and which
    of the official code's conditions acted. Under ``accumulation_scaling: official`` the whole loss is summed
    over the GA micro-batches undivided (``JEPATrainer``), so every term, NTP included, weighs GA × its weight
    (NTP as micro-batch means). ``RunConfig.validate`` refuses the setting where it cannot act."""
    batch, steps = config.train.batch_size, config.train.gradient_accumulation_steps
    official_scaling = config.jepa.accumulation_scaling == "official"
    scale = steps if official_scaling else 1
    terms = config.objective_terms()  # ntp first, with γ
    weights = {terms[0]["name"]: terms[0]["weight"] * scale,
               **{t["name"]: t["weight"] * scale for t in terms[1:] if t["weight"] > 0}}
    acted = [name for name, on in (("train_prompt", config.data.train_prompt), ("train_eos=false", not config.data.train_eos),
                                   ("accumulation_scaling=official", official_scaling and steps > 1 and len(weights) > 1))
             if on]
    return {"per_device_batch": batch, "gradient_accumulation_steps": steps, "processes": processes,
            "global_batch": batch * steps * processes, "effective_weights": weights, "official_conditions_acted": acted}


@dataclasses.dataclass
class Trained:
    """What ``train`` hands to evaluation: the final model (LoRA merged) and its training summary."""

    model: object
    tokenizer: object
    summary: dict


def train(config: RunConfig) -> Trained | None:
    """Train ``config`` in its (prepared) run folder and save ``model/``; None on non-main processes.

    The training data are read, checked and encoded before the model is loaded. Resumes from the
    folder's last checkpoint. Raises DataError on bad data (file:line) and NonFiniteLossError if the
    loss turns NaN/inf (the last good checkpoint is kept and the error is written to ``run.log``).
    """
    out = Path(config.output_dir)
    check_precision(config.train.precision)
    mode, why = resolved_views(config)
    log.info("view mode %s (%s)", mode, why)
    config = with_resolved_views(config)
    tokenizer, predictor_ids = build_tokenizer(config)
    train_file = data_file(config, "train")
    if view_mode(mode).multiview:
        check_data(config)
        rows = read_views(train_file, config.data.max_train_examples)
        features = [encode_views(views, tokenizer, predictor_ids, config.data.max_length) for views in rows]
        counts = {"examples": len(rows), "views": sum(len(v) for v in rows)}
        collator = MultiViewCollator(tokenizer.pad_token_id)
    else:
        features, counts = encode_dataset(load_examples(config, "train"), tokenizer, predictor_ids,
                                          config.data.max_length, **encoding_options(config))
        collator = JEPACollator(tokenizer.pad_token_id, config.jepa.views, config.jepa.predictors,
                                config.jepa.shared_view_prefix)
    log.info("train data %s: %s (max_length=%d)", train_file, dict(counts), config.data.max_length)
    if not features:
        raise DataError(f"{train_file}: no trainable example left after truncation")
    model = build_model(config, tokenizer, predictor_ids)
    objective = build_objective(config, model)
    checkpoint = run_folder.last_checkpoint(out)
    clock = run_folder.TrainingClock.resumed(checkpoint)  # a resumed run counts its earlier seconds too
    trainer = JEPATrainer(
        model=model,
        args=training_arguments(config, out),
        train_dataset=features,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[run_folder.LogToRunLog(), clock],
        jepa=config.jepa,
        objective=objective,
        held=collator(features[: config.train.batch_size]) if config.jepa.geometry_every else None,
    )
    clock.start()
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except NonFiniteLossError as err:
        log.error("%s", err)
        raise
    train_s, train_cpu_s = clock.seconds(), clock.cpu_seconds()

    # Under `accelerate launch`, only the main process saves, evaluates and writes results.
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return None
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, OBJECTIVE_ATTRIBUTE):  # the objective's own parameters are not part of the saved model
        delattr(model, OBJECTIVE_ATTRIBUTE)
    if config.model.lora:
        model = model.merge_and_unload()
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    summary = dict(conditions=effective_conditions(config, trainer.accelerator.num_processes), view_mode=mode,
                   environment=environment(trainer.args.device),
                   name=config.name, lbd=config.llm_jepa_weight(), gamma=config.jepa.gamma, predictors=config.jepa.predictors,
                   objective=config.objective_terms(),
                   distance=config.jepa.distance, seed=config.train.seed, train_seconds=round(train_s, 1),
                   train_cpu_seconds=round(train_cpu_s, 1),
                   train_steps=result.global_step, train_loss=trainer.training_loss(), train_data=dict(counts),
                   log_history=trainer.state.log_history)
    for key in sorted({k for row in trainer.state.log_history for k in row if k.startswith("grad_cosine")}):
        values = [row[key] for row in trainer.state.log_history if key in row]
        summary[f"{key}_mean"] = sum(values) / len(values)  # grad_cosine_mean: LLM-JEPA, as before
    return Trained(model, tokenizer, summary)
