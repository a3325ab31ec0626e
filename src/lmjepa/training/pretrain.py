"""``lmjepa pretrain``: Predict-and-Reconstruct encoder pretraining through ``transformers.Trainer``.

One run folder per config (``output_dir``), like ``lmjepa train``: ``config.yaml``, ``run.log``,
``checkpoint-N/`` (a killed run resumes from the last), ``model/`` (the encoder f_θ as a
``BertModel`` + tokenizer, readable by ``lmjepa analyze`` and ``lmjepa probe``), ``runs/``
(TensorBoard: loss, mlm_loss, jepa_loss, lambda, embedding_std, effective_rank), ``metrics.json``.

The EMA target encoder is updated by ``monitoring.EMACallback`` at the end of every *optimizer* step (so once per
accumulated batch, and identically in every process, whose weights DDP keeps equal), with the momentum rising
linearly from ``ema_start`` to ``ema_end`` over ``max_steps``: the same ``EMATarget``, metric log and held-batch
monitor as ``JEPATrainer`` (``training/monitoring.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import BertConfig, Trainer

from ..data.pretrain_collator import HybridCollator
from ..data.text import read_texts
from ..models.loading import load_tokenizer
from ..models.predict_reconstruct import PredictReconstruct
from ..objectives.predict_reconstruct import collapse_monitors
from . import run_folder
from .checkpoints import AtomicCheckpoints
from .monitoring import EMACallback, EMATarget, MetricLog
from .pretrain_config import PretrainConfig
from .run import training_arguments
from ..seeds import init_seed

log = logging.getLogger("lmjepa")


class PretrainTrainer(AtomicCheckpoints, MetricLog, Trainer):
    """Trainer whose loss is the model's ``PredictReconstructLoss``; logs its parts (``mlm_loss``, ``jepa_loss``,
    ``lambda``) and, every ``monitor_every`` steps, the collapse monitors of the held batch. With a target encoder
    (every λ mode but ``mlm_only``), ``ema`` is its ``EMATarget`` (momentum from ``ema`` = (start, end))."""

    def __init__(self, *args, held: dict | None = None, monitor_every: int = 0, ema: tuple[float, float] = (0.996, 1.0),
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.held, self.monitor_every = held, monitor_every
        target = getattr(self.model, "target_encoder", None)  # none in the mlm_only control
        self.ema = None if target is None else EMATarget.of(target, "encoder", *ema)
        if self.ema is not None:
            self.add_callback(EMACallback(self))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        progress = self.state.global_step / max(1, self.state.max_steps)
        out = model(**inputs, progress=progress)
        if model.training:
            self.record(**{key: float(out[key]) for key in ("mlm_loss", "jepa_loss", "lambda") if out[key] is not None})
            self.monitor_held(model, self.monitor_every, _collapse)
        return (out["loss"], out) if return_outputs else out["loss"]


def _collapse(module, held: dict) -> dict[str, float]:
    """Embedding std and effective rank of the held batch's mean-pooled encoder states."""
    ids, mask = held["input_ids"], held["attention_mask"]
    states = module.encode(ids, mask)
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return collapse_monitors(pooled)


def build_model(config: PretrainConfig, vocab_size: int) -> PredictReconstruct:
    m = config.model
    torch.manual_seed(init_seed(config.train.seed))  # the encoder is built first: hybrid and control start equal
    encoder_config = BertConfig(
        vocab_size=vocab_size, hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_heads, intermediate_size=m.intermediate_size or 4 * m.hidden_size,
        max_position_embeddings=max(512, m.max_length), hidden_dropout_prob=m.dropout,
        attention_probs_dropout_prob=m.dropout)
    o = config.objective
    return PredictReconstruct(encoder_config, m.predictor_layers, m.predictor_hidden, m.predictor_heads,
                              o.lambda_mode, o.lbd, o.lambda_start, o.lambda_end)


def pretrain(config: PretrainConfig, force: bool = False) -> dict:
    """Pretrain one encoder into ``config.output_dir``; return its metrics (also ``metrics.json``).

    The run folder follows ``run_folder``: resumes from the last checkpoint, a finished run is
    returned as is unless ``force`` (which removes stale checkpoints and results), ``run.log`` holds
    the training log. Raises RunFolderError if the folder holds a run of another config, or another
    process is writing it.
    """
    with run_folder.exclusive(config.output_dir):
        return _pretrain(config, force)


def _pretrain(config: PretrainConfig, force: bool) -> dict:
    """``pretrain`` while this process holds the run folder's lock."""
    finished = run_folder.prepare(config, force)
    if finished is not None:
        return finished
    out = Path(config.output_dir)
    with run_folder.run_log(out):
        tokenizer = load_tokenizer(config.model.tokenizer, chat_template=False)
        texts = [t for source in config.text for t in read_texts(source, config.data_dir)][: config.max_texts]
        encoded = tokenizer(texts, truncation=True, max_length=config.model.max_length)["input_ids"]
        features = [{"input_ids": ids} for ids in encoded]
        held = tokenizer(texts[:256], truncation=True, max_length=config.model.max_length, padding=True,
                         return_tensors="pt")
        log.info("pretraining text: %d texts from %s", len(features), config.text)
        model = build_model(config, len(tokenizer))
        checkpoint = run_folder.last_checkpoint(out)
        clock = run_folder.TrainingClock.resumed(checkpoint)  # a resumed run counts its earlier seconds too
        trainer = PretrainTrainer(model=model, args=training_arguments(config, out), train_dataset=features,
                                  data_collator=HybridCollator(tokenizer, config.objective, config.train.seed),
                                  callbacks=[run_folder.LogToRunLog(), clock], held=dict(held),
                                  monitor_every=config.objective.monitor_every,
                                  ema=(config.objective.ema_start, config.objective.ema_end))
        clock.start()
        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.accelerator.wait_for_everyone()
        if not trainer.is_world_process_zero():
            return {}
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.encoder.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        history = trainer.state.log_history
        last = {k: v for row in history for k, v in row.items() if k in ("lambda", "embedding_std", "effective_rank")}
        metrics = {"name": config.name, "lambda_mode": config.objective.lambda_mode, "seed": config.train.seed,
                   "texts": len(features), "train_steps": result.global_step, "train_loss": trainer.training_loss(),
                   "train_seconds": round(clock.seconds(), 1), "train_cpu_seconds": round(clock.cpu_seconds(), 1),
                   **{f"final_{k}": v for k, v in last.items()},
                   "log_history": history}
        log.info("pretraining done: %d steps, mean loss %.4f", result.global_step, trainer.training_loss())
        return run_folder.finish(out, metrics)
