"""``JEPATrainer``: a ``transformers.Trainer`` whose loss is LLM-JEPA (eq. 2/3).

Gradient accumulation and many processes (TRL-style, no process-group code here):
* L_NTP comes from the model, normalised by ``num_items_in_batch`` — the label count of the whole
  accumulated batch, summed over processes by the Trainer — and multiplied by the number of
  processes, because DDP averages gradients. Summed over micro-batches and processes, that is
  exactly the per-token mean of the global batch.
* The JEPA term is a per-micro-batch mean over pairs, so it is divided by the accumulation steps
  (DDP's averaging takes care of processes). The gradient at batch B therefore equals the one at
  B/2 with 2 accumulation steps (tests/test_trainer.py checks it).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext

import torch
from transformers import Trainer

from ..config import JEPAConfig
from ..objectives.jepa import LLMJEPALoss, gather_enc

VIEW_KEYS = ("view_input_ids", "view_attention_mask", "view_enc_index")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the run stops and keeps its last good checkpoint."""


def encode_views(model, view_input_ids, view_attention_mask, view_enc_index) -> torch.Tensor:
    """Enc of each view row: last-layer hidden state at its Enc token.

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


class JEPATrainer(Trainer):
    """Trainer for ``L = γ·L_NTP + λ·d(Pred(Enc(Text)), Enc(Code))``.

    Inputs come from ``lmjepa.data.views.JEPACollator``. Logged separately: ``lm_loss``,
    ``jepa_loss`` and ``jepa_cosine`` (mean cos of Pred(Enc(Text)) and Enc(Code)). With λ = 0 the
    loss is exactly the NTP loss; if ``jepa.monitor`` the JEPA distance is still computed without
    gradient on the last step before each log (paper §3.3).
    """

    loss_is_scaled_for_ga = True  # compute_loss below handles accumulation itself

    def __init__(self, *args, jepa: JEPAConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.jepa = jepa
        self.objective = LLMJEPALoss(jepa.lbd, jepa.gamma, jepa.distance, jepa.temperature)
        # Make the Trainer count labels over the accumulated batch and pass num_items_in_batch.
        self.model_accepts_loss_kwargs = True
        self._metrics: dict[str, list[float]] = defaultdict(list)

    def _monitor_now(self, model) -> bool:
        step = self.state.global_step + 1  # the step being computed
        return model.training and self.jepa.monitor and step % max(1, int(self.args.logging_steps)) == 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        views = {key: inputs.pop(key) for key in VIEW_KEYS if key in inputs}
        labels = inputs["labels"]
        outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
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

        use_jepa = self.objective.lbd > 0
        loss = self.objective.gamma * ntp
        if views and (use_jepa or self._monitor_now(model)):
            with nullcontext() if use_jepa else torch.no_grad():
                pred, target = encode_views(model, **views).chunk(2)  # (B, D) each: Text rows, Code rows
                parts = self.objective(ntp, pred, target)
            if use_jepa:
                loss = loss + self.objective.lbd * parts.jepa / accumulation
            self._record(jepa_loss=parts.jepa.item(), jepa_cosine=parts.cosine.item())
        self._record(lm_loss=ntp_mean.item())

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
