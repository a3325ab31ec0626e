"""``JEPATrainer``: a ``transformers.Trainer`` whose loss is ``lmjepa.objectives.Objective``:
``γ·L_NTP + Σ_i weight_i · A_i`` (LLM-JEPA and the registered auxiliaries).

Each step the trainer computes once what the terms need (``Objective.needs``): the views (through the
view mode's own forward, ``lmjepa.data.packing.forward``), full-sequence hidden states at given
layers, the LM-head weight, an EMA target — and the objective returns the scalar to back-propagate.

Gradient accumulation and many processes (TRL-style, no process-group code here):
* L_NTP comes from the model, normalised by ``num_items_in_batch`` — the label count of the whole
  accumulated batch, summed over processes by the Trainer — and multiplied by the number of
  processes, because DDP averages gradients. Summed over micro-batches and processes, that is
  exactly the per-token mean of the global batch.
* Every auxiliary term is a per-micro-batch mean, so it is divided by the accumulation steps
  (DDP's averaging takes care of processes). The gradient at batch B therefore equals the one at
  B/2 with 2 accumulation steps (tests/test_trainer.py checks it).
* ``jepa.accumulation_scaling: official`` reproduces the official ``RepresentationTrainer.compute_loss``
  (galilai-group/llm-jepa ``finetune.py``) under the Trainer of transformers 4.55 and 5.x: it returns
  ``γ·lm_loss + λ·jepa_loss`` with ``lm_loss`` the micro-batch's own token mean, ignores
  ``num_items_in_batch``, and the Trainer (the model accepts loss kwargs) does not divide it by the
  accumulation steps. So the *whole* loss, NTP included, is summed over micro-batches undivided: the
  gradient is about GA× lmjepa's, λ relative to γ unchanged, and the clip at ``max_grad_norm`` meets it
  (tests/test_official_conditions.py checks the ratio; benchmarks/official_check runs the official trainer).

Every forward goes through the (possibly DDP/peft-wrapped) model itself, never a submodule, so
gradient synchronisation stays with Accelerate.
"""

from __future__ import annotations

import torch
from torch.func import functional_call
from transformers import Trainer

from ..data import packing
from ..objectives import Objective, Step
from ..objectives.monitors import geometry_monitors
from .config import JEPAConfig, legacy_specs
from .checkpoints import AtomicCheckpoints, resumed_loss_total  # noqa: F401  (re-exported)
from .monitoring import EMACallback, EMATarget, MetricLog  # noqa: F401  (EMATarget re-exported)

class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the run stops and keeps its last good checkpoint."""


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


def ema_encoder(ema: EMATarget, model):
    """``encode(input_ids, attention_mask, enc_index, **kwargs) -> (N, D)``: Enc(Code) with the EMA parameters in
    place of the model's (``torch.func.functional_call``), without gradient (``target: ema``)."""
    @torch.no_grad()
    def encode(input_ids, attention_mask, enc_index, **kwargs):
        outputs = functional_call(model, ema.params, args=(), kwargs=dict(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, logits_to_keep=1,
            **kwargs), strict=False)
        return packing.gather_enc(outputs.hidden_states[-1], enc_index)
    return encode


class JEPATrainer(AtomicCheckpoints, MetricLog, Trainer):
    """Trainer for ``L = γ·L_NTP + Σ_i weight_i·A_i`` (``objective``; from ``jepa`` alone when not given:
    the single LLM-JEPA term λ·d(Pred(Enc(Text)), Enc(Code))).

    Inputs come from ``lmjepa.data.packing.JEPACollator`` (views computed as ``jepa.views`` says).
    Logged separately: ``lm_loss``; each term under its own key (``jepa_loss`` for LLM-JEPA, else
    ``<name>_loss``); ``jepa_cosine`` (mean cos(Pred(Enc(Text)), Enc(Code))) when views are computed;
    ``<key>_dropped`` (share of steps that skipped a term with loss dropout); every
    ``jepa.grad_cosine_every`` steps ``grad_cosine`` (LLM-JEPA) / ``grad_cosine_<name>`` = cos(∇ term,
    ∇ NTP); every ``jepa.geometry_every`` steps the held-batch geometry monitors. A term at weight 0
    is monitored without gradient on logging steps (with ``jepa.monitor``). A dropped step computes no
    view tokens at all.
    """

    loss_is_scaled_for_ga = True  # compute_loss below handles accumulation itself

    def __init__(self, *args, jepa: JEPAConfig, objective: Objective | None = None, held: dict | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.jepa = jepa
        self.objective = objective or Objective(legacy_specs(jepa), jepa.gamma)
        self.held = held
        self.ema = None
        if self.objective.target == "ema":
            term = next(t for t in self.objective.terms if t.needs().target == "ema")
            self.ema = EMATarget.copy_of(self.model, term.params["ema_start"], term.params["ema_end"])
            self.add_callback(EMACallback(self))
        # Make the Trainer count labels over the accumulated batch and pass num_items_in_batch.
        self.model_accepts_loss_kwargs = True

    def _monitor_now(self, model) -> bool:
        step = self.state.global_step + 1  # the step being computed
        return model.training and self.jepa.monitor and step % max(1, int(self.args.logging_steps)) == 0

    def _every(self, model, every: int) -> bool:
        return model.training and every > 0 and self.state.global_step % every == 0

    def _target_encoder(self, model, needs):
        if needs.target == "ema":
            return ema_encoder(self.ema, self.accelerator.unwrap_model(model))
        mode = packing.view_mode(self.jepa.views)
        if needs.target == "stop-grad" and not (mode.one_row or mode.multiview):  # Code rows run without a graph
            return torch.no_grad()(lambda *a, **k: packing.encode_rows(model, *a, **k))
        return None

    def _step(self, model, forward, inputs, spans, needs) -> Step:
        target = forward.target
        if target is not None and needs.target != "live":
            target = target.detach()
        lm_head = self.accelerator.unwrap_model(model).get_output_embeddings().weight if needs.lm_head else None
        return Step(hidden=forward.hidden, attention_mask=inputs["attention_mask"], spans=spans, pred=forward.pred,
                    target=target, lm_head=lm_head, step=self.state.global_step, seed=self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        views = {key: inputs.pop(key) for key in list(inputs) if key.startswith(packing.VIEW_KEYS)}
        spans = views.pop("spans", None)
        labels = inputs["labels"]
        objective = self.objective
        dropped = objective.dropped(self.args.seed, self.state.global_step) if model.training else [False] * len(objective.terms)
        train = [w > 0 and not d and bool(views) for w, d in zip(objective.weights, dropped)]
        monitor_now = self._monitor_now(model) and bool(views)
        monitor = [monitor_now and w == 0 for w in objective.weights]

        needs = objective.needs(train)
        mode = self.jepa.views
        forward = packing.forward(mode, model, inputs, views, num_items_in_batch, needs.layers, needs.views,
                                  self._target_encoder(model, needs) if needs.views else None)
        step = self._step(model, forward, inputs, spans, needs)
        monitor_step = None
        if any(monitor):
            watch = objective.needs(monitor)
            with torch.no_grad():
                watched = packing.forward(mode, model, inputs, views, None, watch.layers, watch.views)
            monitor_step = self._step(model, watched, inputs, spans, watch)

        ntp = forward.outputs.loss
        # micro-batches in this optimizer step (the Trainer sets it per step; the last window may be shorter)
        accumulation = getattr(self, "current_gradient_accumulation_steps", 1) if model.training else 1
        local_items = labels[:, 1:].ne(-100).sum()
        official = self.jepa.accumulation_scaling == "official"
        if num_items_in_batch is not None:
            micro_mean = ntp * num_items_in_batch / local_items.clamp(min=1)  # this micro-batch's own mean
            ntp_mean = micro_mean.detach()
            if official:  # the official lm_loss: the micro-batch mean, never divided
                ntp = micro_mean
            elif self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                ntp = ntp * self.accelerator.num_processes
        else:
            ntp_mean = ntp.detach()
            ntp = ntp if official else ntp / accumulation

        # lmjepa divides each per-micro-batch auxiliary mean by the accumulation steps; the official code does not
        scale = 1 if official else accumulation
        parts = objective(ntp, train, step, scale, monitor, monitor_step)
        loss = parts.loss
        if self._every(model, self.jepa.grad_cosine_every):
            for key in parts.trained:
                name = "grad_cosine" if key == "jepa_loss" else f"grad_cosine_{key.removesuffix('_loss')}"
                self.record(**{name: gradient_cosine(model, parts.values[key], ntp)})
        self.record(**{key: value.item() for key, value in parts.values.items()})
        shown = step if step.pred is not None else monitor_step
        if shown is not None and shown.pred is not None:
            cosine = torch.nn.functional.cosine_similarity(shown.pred.detach(), shown.target.detach(), dim=-1).mean()
            self.record(jepa_cosine=cosine.item())
        self.record(lm_loss=ntp_mean.item())
        if model.training:
            for key, alpha, drop in zip(objective.keys, objective.dropouts, dropped):
                if alpha > 0:
                    self.record(**{("jepa_dropped" if key == "jepa_loss" else f"{key}_dropped"): float(drop)})
        self.monitor_held(model, self.jepa.geometry_every, _geometry)

        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss at step {self.state.global_step} (lm_loss={ntp_mean.item()}); "
                f"the run stops; the last good checkpoint in {self.args.output_dir} is kept"
            )
        return (loss, forward.outputs) if return_outputs else loss


def _geometry(module, held: dict) -> dict[str, float]:
    """The held batch's geometry monitors (``objectives.monitors``) on the last layer's states."""
    out = module(input_ids=held["input_ids"], attention_mask=held["attention_mask"], output_hidden_states=True,
                 logits_to_keep=1)
    return geometry_monitors(out.hidden_states[-1], held["spans"], held["attention_mask"])
