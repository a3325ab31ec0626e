"""``JEPATrainer``: a ``transformers.Trainer`` whose loss is LLM-JEPA (eq. 2/3).

Gradient accumulation and many processes (TRL-style, no process-group code here):
* L_NTP comes from the model, normalised by ``num_items_in_batch`` — the label count of the whole
  accumulated batch, summed over processes by the Trainer — and multiplied by the number of
  processes, because DDP averages gradients. Summed over micro-batches and processes, that is
  exactly the per-token mean of the global batch.
* The JEPA term is a per-micro-batch mean over pairs, so it is divided by the accumulation steps
  (DDP's averaging takes care of processes). The gradient at batch B therefore equals the one at
  B/2 with 2 accumulation steps (tests/test_trainer.py checks it).

Every forward goes through the (possibly DDP/peft-wrapped) model itself, never a submodule, so
gradient synchronisation stays with Accelerate.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext

import torch
from transformers import Trainer

from ..data.masks import to_float_mask
from ..objectives.jepa import LLMJEPALoss, gather_enc, jepa_dropped
from .config import JEPAConfig

VIEW_PREFIXES = ("view_", "pack_")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the run stops and keeps its last good checkpoint."""


def encode_views(model, view_input_ids, view_attention_mask, view_enc_index) -> torch.Tensor:
    """Enc of each view row (``separate`` mode): last-layer hidden state at its Enc token.

    view_input_ids, view_attention_mask: (N, V) long; view_enc_index: (N,) long.
    Returns (N, D) float. One forward over all rows (Text and Code rows do not attend to each other).
    """
    outputs = model(
        input_ids=view_input_ids,
        attention_mask=view_attention_mask,
        output_hidden_states=True,
        logits_to_keep=1,  # the LM head is not needed for the views
    )
    return gather_enc(outputs.hidden_states[-1], view_enc_index)


def gradient_cosine(model, first: torch.Tensor, second: torch.Tensor) -> float:
    """cos(∇first, ∇second) over all trainable parameters, flattened into one vector each.

    Both losses must still have their graphs (they are kept for the real backward). Parameters a
    loss does not reach contribute zeros. Returns NaN if either gradient is zero.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for loss in (first, second)]
    flat = [torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gs, params)])
            for gs in grads]
    norms = flat[0].norm() * flat[1].norm()
    return float((flat[0] @ flat[1]) / norms) if norms > 0 else float("nan")


def _pair(hidden: torch.Tensor, enc_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden (B, S, D), enc_index (B, 2) → (Pred(Enc(Text)), Enc(Code)), each (B, D)."""
    return gather_enc(hidden, enc_index[:, 0]), gather_enc(hidden, enc_index[:, 1])


def joint_forward(model, inputs: dict, views: dict, mode: str, num_items_in_batch=None):
    """NTP outputs and the two embeddings for a batch, in view mode ``mode``.

    ``inputs`` holds input_ids, attention_mask, labels (B, L); ``views`` the mode's extra tensors
    (``lmjepa.data.packing``). Returns (outputs with ``.loss`` = L_NTP, pred (B, D), target (B, D)).
    """
    dtype = next(model.parameters()).dtype
    if mode == "separate":
        outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
        pred, target = encode_views(model, **views).chunk(2)
        return outputs, pred, target
    if mode in ("packed", "shared_prefix"):  # one row per example; the full sequence is its last L tokens
        outputs = model(
            input_ids=views["pack_input_ids"],
            attention_mask=to_float_mask(views["pack_allowed"], dtype),
            position_ids=views["pack_position_ids"],
            labels=inputs["labels"],
            num_items_in_batch=num_items_in_batch,
            logits_to_keep=inputs["input_ids"].shape[1],  # LM-head logits for the full sequence only
            output_hidden_states=True,
        )
        return (outputs, *_pair(outputs.hidden_states[-1], views["pack_enc_index"]))
    raise ValueError(f"unknown view mode {mode!r}")


class JEPATrainer(Trainer):
    """Trainer for ``L = γ·L_NTP + λ·d(Pred(Enc(Text)), Enc(Code))``.

    Inputs come from ``lmjepa.data.packing.JEPACollator`` (views computed as ``jepa.views`` says).
    Logged separately: ``lm_loss``, ``jepa_loss``, ``jepa_cosine`` (mean cos of Pred(Enc(Text)) and
    Enc(Code)), ``jepa_dropped`` (share of steps whose JEPA term was dropped) and, every
    ``jepa.grad_cosine_every`` steps, ``grad_cosine`` = cos(∇ JEPA term, ∇ NTP term). With λ = 0 the loss
    is exactly the NTP loss; if ``jepa.monitor`` the JEPA distance is still computed without gradient
    on the last step before each log (paper §3.3). A dropped step (loss dropout α, §5.2) computes no
    view tokens at all.
    """

    loss_is_scaled_for_ga = True  # compute_loss below handles accumulation itself

    def __init__(self, *args, jepa: JEPAConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.jepa = jepa
        self.objective = LLMJEPALoss(jepa.lbd, jepa.gamma, jepa.distance, jepa.temperature)
        jepa_dropped(0, 0, jepa.dropout)  # validates α early
        # Make the Trainer count labels over the accumulated batch and pass num_items_in_batch.
        self.model_accepts_loss_kwargs = True
        self._metrics: dict[str, list[float]] = defaultdict(list)

    def _monitor_now(self, model) -> bool:
        step = self.state.global_step + 1  # the step being computed
        return model.training and self.jepa.monitor and step % max(1, int(self.args.logging_steps)) == 0

    def _grad_cosine_now(self, model) -> bool:
        every = self.jepa.grad_cosine_every
        return model.training and every > 0 and self.state.global_step % every == 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        views = {key: inputs.pop(key) for key in list(inputs) if key.startswith(VIEW_PREFIXES)}
        labels = inputs["labels"]
        dropped = model.training and jepa_dropped(self.args.seed, self.state.global_step, self.jepa.dropout)
        use_jepa = self.objective.lbd > 0 and bool(views) and not dropped
        pred = target = None
        if use_jepa:
            outputs, pred, target = joint_forward(model, inputs, views, self.jepa.views, num_items_in_batch)
        else:
            outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
            if views and self.objective.lbd == 0 and self._monitor_now(model):
                with torch.no_grad():
                    _, pred, target = joint_forward(model, inputs, views, self.jepa.views)

        ntp = outputs.loss
        # micro-batches in this optimizer step (the Trainer sets it per step; the last window may be shorter)
        accumulation = getattr(self, "current_gradient_accumulation_steps", 1) if model.training else 1
        local_items = labels[:, 1:].ne(-100).sum()
        if num_items_in_batch is not None:
            ntp_mean = ntp.detach() * num_items_in_batch / local_items.clamp(min=1)  # this micro-batch's mean
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                ntp = ntp * self.accelerator.num_processes
        else:
            ntp_mean = ntp.detach()
            ntp = ntp / accumulation

        loss = self.objective.gamma * ntp
        if pred is not None:
            with nullcontext() if use_jepa else torch.no_grad():
                parts = self.objective(ntp, pred, target)
            if use_jepa:
                weight = self.objective.lbd / (1 - self.jepa.dropout) if self.jepa.dropout_compensate else self.objective.lbd
                loss = loss + weight * parts.jepa / accumulation
                if self._grad_cosine_now(model):
                    self._record(grad_cosine=gradient_cosine(model, parts.jepa, ntp))
            self._record(jepa_loss=parts.jepa.item(), jepa_cosine=parts.cosine.item())
        self._record(lm_loss=ntp_mean.item())
        if model.training and self.jepa.dropout > 0:
            self._record(jepa_dropped=float(dropped))

        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss at step {self.state.global_step} (lm_loss={ntp_mean.item()}); "
                f"the run stops; the last good checkpoint in {self.args.output_dir} is kept"
            )
        return (loss, outputs) if return_outputs else loss

    def _record(self, **values: float) -> None:
        prefix = "" if self.model.training else "eval_"
        for key, value in values.items():
            self._metrics[prefix + key].append(value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Merge the mean of the recorded JEPA metrics (averaged over processes) into ``logs``."""
        is_eval = any(key.startswith("eval_") for key in logs)
        for key in [k for k in self._metrics if k.startswith("eval_") == is_eval]:
            values = self._metrics.pop(key)
            mean = torch.tensor(sum(values) / len(values), device=self.args.device)
            logs[key] = self.accelerator.reduce(mean, reduction="mean").item()
        super().log(logs, start_time)
