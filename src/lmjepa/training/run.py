"""One run, end to end: data → model → JEPATrainer → final model → evaluation → run folder.

The run folder (``output_dir``) holds::

    config.yaml         the resolved configuration
    run.log             data counts (truncated / dropped examples), timings, errors
    checkpoint-N/       Trainer checkpoints while training (a killed run resumes from the last)
    model/              the final model + tokenizer (LoRA runs: adapters merged)
    runs/               TensorBoard logs
    predictions.jsonl   one row per evaluation example
    metrics.json        evaluation metrics, training summary, data counts, wall times

A run whose ``metrics.json`` exists is complete and is not recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..config import RunConfig, load_config, save_config
from ..data.jsonl import Example, read_examples, take
from ..data.packing import JEPACollator
from ..data.views import encode_dataset
from ..evaluation.evaluate import evaluate_examples
from ..evaluation.tasks import METRICS, Task, get_task
from ..io import atomic_write_json
from ..models.loading import add_predictor_tokens, load_model, load_tokenizer, resolve_model_path
from .trainer import JEPATrainer, NonFiniteLossError

log = logging.getLogger("lmjepa")


def task_of(config: RunConfig) -> Task:
    """The config's task (registered, or defined under ``tasks:``). Raises KeyError if unknown."""
    return get_task(config.task, config.tasks)


def data_file(config: RunConfig, split: str) -> Path:
    """The JSONL file for ``split`` (``train``/``test``): the explicit path, else the task's file."""
    explicit = config.data.train_file if split == "train" else config.data.eval_file
    if explicit:
        return Path(explicit)
    return task_of(config).file(split, config.data.data_dir)


def load_examples(config: RunConfig, split: str) -> list[Example]:
    """The split's examples (``max_*_examples`` of them, picked per ``data.subset`` or the task's
    ``subset``); rows without a system turn get the task's prompt."""
    limit = config.data.max_train_examples if split == "train" else config.data.max_eval_examples
    task = task_of(config)
    how = config.data.subset or task.subset
    examples = take(read_examples(data_file(config, split), limit if how == "first" else None), limit, how)
    if task.system_prompt is None:
        return examples
    return [e if e.system is not None else dataclasses.replace(e, system=task.system_prompt) for e in examples]


def evaluation_data_dir(config: RunConfig) -> str | None:
    """The data folder for task resources beyond the JSONL (Spider databases), if one is set."""
    return config.data.data_dir or os.environ.get("LMJEPA_DATA_DIR")


def build_model_and_tokenizer(config: RunConfig):
    """Tokenizer with the k predictor tokens, and the (optionally LoRA-wrapped) model."""
    path = resolve_model_path(config.model.name)
    tokenizer = load_tokenizer(path)
    predictor_ids = add_predictor_tokens(tokenizer, config.jepa.predictors)
    model = load_model(
        path,
        tokenizer,
        from_scratch=config.model.from_scratch,
        config_overrides=config.model.config_overrides,
        seed=config.train.seed,
        attn_implementation=config.model.attn_implementation,
    )
    if config.model.lora:
        from peft import LoraConfig, get_peft_model

        lora = dict(config.model.lora)
        torch.manual_seed(config.train.seed)
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
    return model, tokenizer, predictor_ids


def training_arguments(config: RunConfig, out: Path) -> TrainingArguments:
    t = config.train
    extra = dict(t.extra)
    # Under `accelerate launch` without GPUs, the Trainer sets up multi-CPU DDP (gloo) only with use_cpu.
    extra.setdefault("use_cpu", int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available())
    # Every trainable parameter takes part in every step (a dropped JEPA term still runs the full model).
    extra.setdefault("ddp_find_unused_parameters", False)
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
        data_seed=t.seed,
        report_to=["tensorboard"],
        remove_unused_columns=False,  # keep the view columns
        dataloader_num_workers=0,
        **extra,
    )


def _add_file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def train_and_evaluate(config: RunConfig, force: bool = False) -> dict:
    """Train one run and evaluate it; return its metrics (also in ``metrics.json``).

    Resumes from the last checkpoint in ``output_dir``; returns the stored metrics
    of a finished run unless ``force``. Raises ValueError if ``output_dir`` holds a run of a
    different config (never silently reuses or resumes it). Raises NonFiniteLossError if the loss turns NaN/inf
    (the last good checkpoint is kept and the error is written to ``run.log``).
    """
    out = Path(config.output_dir)
    saved = out / "config.yaml"
    if saved.exists() and not force and load_config(saved).to_dict() != config.to_dict():
        raise ValueError(f"{out} holds a run with a different config ({saved}); "
                         "use another output_dir, or --force to start it again")
    if (out / "metrics.json").exists() and not force:
        log.info("%s is complete; not recomputed (use --force)", out)
        return json.loads((out / "metrics.json").read_text())
    if force:  # start again: no stale metrics, no checkpoint of another config to resume
        (out / "metrics.json").unlink(missing_ok=True)
        for checkpoint in out.glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    handler = _add_file_log(out)
    try:
        if os.environ.get("RANK", "0") == "0":
            save_config(config, out / "config.yaml")
        model, tokenizer, predictor_ids = build_model_and_tokenizer(config)
        train_file = data_file(config, "train")
        examples = load_examples(config, "train")
        features, counts = encode_dataset(examples, tokenizer, predictor_ids, config.data.max_length)
        log.info("train data %s: %s (max_length=%d)", train_file, dict(counts), config.data.max_length)
        if not features:
            raise ValueError(f"{train_file}: no trainable example left after truncation")

        trainer = JEPATrainer(
            model=model,
            args=training_arguments(config, out),
            train_dataset=features,
            data_collator=JEPACollator(tokenizer.pad_token_id, config.jepa.views, config.jepa.predictors),
            processing_class=tokenizer,
            jepa=config.jepa,
        )
        resume = get_last_checkpoint(str(out))
        if resume:
            log.info("resuming from %s", resume)
        start = time.perf_counter()
        try:
            result = trainer.train(resume_from_checkpoint=resume)
        except NonFiniteLossError as err:
            log.error("%s", err)
            raise
        train_s = time.perf_counter() - start

        # Under `accelerate launch`, only the main process saves, evaluates and writes results.
        trainer.accelerator.wait_for_everyone()
        if not trainer.is_world_process_zero():
            return {}
        model = trainer.accelerator.unwrap_model(trainer.model)
        if config.model.lora:
            model = model.merge_and_unload()
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        for checkpoint in out.glob("checkpoint-*"):  # the final model supersedes them
            shutil.rmtree(checkpoint, ignore_errors=True)

        metrics = evaluate_examples(model, tokenizer, load_examples(config, "test"), task_of(config), config.eval, out,
                                    evaluation_data_dir(config))
        metrics.update(
            name=config.name,
            lbd=config.jepa.lbd,
            gamma=config.jepa.gamma,
            predictors=config.jepa.predictors,
            distance=config.jepa.distance,
            seed=config.train.seed,
            train_seconds=round(train_s, 1),
            train_steps=result.global_step,
            train_loss=result.training_loss,
            train_data=dict(counts),
            log_history=trainer.state.log_history,
        )
        cosines = [row["grad_cosine"] for row in trainer.state.log_history if "grad_cosine" in row]
        if cosines:
            metrics["grad_cosine_mean"] = sum(cosines) / len(cosines)
        atomic_write_json(out / "metrics.json", metrics)
        key = METRICS[metrics["metric"]][0]
        log.info("metrics: %s=%s exact_match=%.2f%% n=%d", key, metrics.get(key), metrics["exact_match"], metrics["n"])
        return metrics
    finally:
        log.removeHandler(handler)
        handler.close()


def run_variants(config, names: list[str] | None = None, force: bool = False, runner=None) -> dict[str, dict]:
    """Run each named variant of ``config`` (all of them by default) into ``output_dir/<variant>``.

    ``runner(config, force)`` does one run (default ``train_and_evaluate``; ``pretrain`` for a
    ``PretrainConfig``). A config without variants is one run into ``output_dir``. Raises KeyError
    on an unknown name.
    """
    runner = runner or train_and_evaluate
    if not config.variants:
        return {config.name: runner(config, force)}
    results = {}
    for name in names or list(config.variants):
        if name not in config.variants:
            raise KeyError(f"unknown variant {name!r}; the config has {list(config.variants)}")
        variant = config.with_overrides(config.variants[name] or {})
        variant = variant.with_overrides({"name": f"{config.name}/{name}", "output_dir": str(Path(config.output_dir) / name)})
        variant.variants = {}
        results[name] = runner(variant, force)
    return results
