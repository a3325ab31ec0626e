"""What both trainers (``JEPATrainer``, the P&R ``PretrainTrainer``) share beyond checkpoints: one EMA target,
one metric log and one held-batch monitor.

* ``EMATarget``: θ̄ ← m·θ̄ + (1 − m)·θ after every optimizer step, m rising linearly from ``start`` to ``end``
  (``objectives.predict_reconstruct.ema_momentum``; P&R eq. 8, I-JEPA). The target is either a momentum copy of
  the model's trainable parameters (``EMATarget.copy_of``: LLM-JEPA's ``target: ema``, saved with each
  checkpoint as ``ema_target.pt``) or a target network inside the model (``EMATarget.of``: P&R's f̄_θ, saved with
  the model's own weights). ``EMACallback`` updates it at the end of each optimizer step (so once per accumulated
  batch, identically on every process, whose weights DDP keeps equal).
* ``MetricLog``: a Trainer mixin. During a step the trainer ``record``s values (terms, their parts, monitors);
  each logging step writes the mean of every recorded key over the window, averaged over processes.
* ``MetricLog.monitor_held``: every ``every`` optimizer steps, a measurement of a held batch in eval mode without
  gradient (the decoder's geometry monitors, the encoder's collapse monitors), recorded like any value.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable

import torch
from transformers import TrainerCallback

from ..objectives.predict_reconstruct import ema_momentum


class EMATarget:
    """The EMA target: ``params`` (name → tensor) moved toward the online parameters of the same names.

    ``online(model)`` yields the online ``(name, parameter)`` pairs of the unwrapped model; ``owned``: the
    tensors are this object's own copy, saved with each checkpoint (``save`` / ``load``), rather than a part of
    the model.
    """

    FILE = "ema_target.pt"

    def __init__(self, params: dict[str, torch.Tensor], start: float = 0.996, end: float = 1.0,
                 online: Callable = lambda model: model.named_parameters(), owned: bool = True):
        self.params, self.start, self.end, self.online, self.owned = params, start, end, online, owned

    @classmethod
    def copy_of(cls, model, start: float = 0.996, end: float = 1.0) -> EMATarget:
        """A momentum copy of ``model``'s *trainable* parameters (under LoRA: the adapters)."""
        return cls({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, start, end)

    @classmethod
    def of(cls, target: torch.nn.Module, online: str, start: float = 0.996, end: float = 1.0) -> EMATarget:
        """The target network ``target`` (its own tensors, updated in place), following the model's submodule
        named ``online`` (same architecture, so the same parameter names)."""
        return cls(dict(target.named_parameters()), start, end,
                   online=lambda model: model.get_submodule(online).named_parameters(), owned=False)

    @torch.no_grad()
    def update(self, model, step: int, total: int) -> None:
        """θ̄ ← m·θ̄ + (1 − m)·θ with m = ``ema_momentum(step, total, start, end)``; ``model`` unwrapped."""
        m = ema_momentum(step, total, self.start, self.end)
        for name, p in self.online(model):
            if name in self.params:
                self.params[name].lerp_(p.detach(), 1.0 - m)

    def save(self, folder: str) -> None:
        """Write an owned target into ``folder/ema_target.pt`` (a target inside the model is in its weights)."""
        if self.owned:
            torch.save(self.params, os.path.join(folder, self.FILE))

    def load(self, folder: str, device) -> None:
        """Read an owned target back from ``folder/ema_target.pt`` when the checkpoint has one."""
        path = os.path.join(folder, self.FILE)
        if self.owned and os.path.isfile(path):
            self.params = {k: v.to(device) for k, v in torch.load(path).items()}


class EMACallback(TrainerCallback):
    """Updates ``trainer.ema`` at the end of every optimizer step."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        t.ema.update(t.accelerator.unwrap_model(t.model), state.global_step, state.max_steps)


class MetricLog:
    """Trainer mixin: ``record`` values during steps; ``log`` adds each key's mean over the logging window,
    averaged over processes (``eval_``-prefixed keys for values recorded in eval mode, logged with the
    evaluation). ``monitor_held`` measures the held batch ``self.held`` every so many steps."""

    held: dict | None = None

    def _recorded(self) -> dict[str, list[float]]:
        if "_metrics" not in self.__dict__:
            self._metrics = defaultdict(list)
        return self._metrics

    def record(self, **values: float) -> None:
        """Add values to the logging window (``eval_``-prefixed when the model is in eval mode)."""
        prefix = "" if self.model.training else "eval_"
        for key, value in values.items():
            self._recorded()[prefix + key].append(value)

    @torch.no_grad()
    def monitor_held(self, model, every: int, measure: Callable[[torch.nn.Module, dict], dict]) -> None:
        """At a training step divisible by ``every`` (> 0; once per optimizer step), ``record`` the values of
        ``measure(unwrapped model, held batch on the device)`` computed in eval mode without gradient."""
        step = self.state.global_step
        if self.held is None or every <= 0 or not model.training or step % every or step == getattr(self, "_held_step", -1):
            return
        self._held_step = step
        module = self.accelerator.unwrap_model(model)
        was = module.training
        module.eval()
        held = {k: v.to(self.args.device) for k, v in self.held.items()}
        values = measure(module, held)
        module.train(was)
        self.record(**values)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Merge the mean of the recorded values (averaged over processes) into ``logs``."""
        recorded = self._recorded()
        is_eval = any(key.startswith("eval_") for key in logs)
        for key in [k for k in recorded if k.startswith("eval_") == is_eval]:
            values = recorded.pop(key)
            mean = torch.tensor(sum(values) / len(values), device=self.args.device)
            logs[key] = self.accelerator.reduce(mean, reduction="mean").item()
        super().log(logs, start_time)
