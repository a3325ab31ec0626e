"""One objective, many terms: ``L = γ·L_NTP + Σ_i weight_i · A_i`` — the scalar training back-propagates.

A config lists ``objectives: [{name, weight, dropout?, compensate?, ...params}]`` (``check_specs``
validates it before any model loads). Per term: loss dropout α (``dropout``: the share of optimizer
steps that skip it, drawn from (seed, step, term index) so every process and micro-batch agrees;
``compensate``: weight/(1 − α) on kept steps) and gradient-accumulation scaling (the term is a
per-micro-batch mean, so it is divided by the micro-batches of the step; L_NTP arrives already
normalised by the Trainer's token count). A term at weight 0 is not trained; it can be monitored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .base import AUXILIARIES, Auxiliary, Needs, Step
from .jepa import jepa_dropped

SPEC_KEYS = ("name", "weight", "dropout", "compensate")


def check_specs(specs: list, where: str = "objectives") -> None:
    """Validate a config's ``objectives`` list. Raises ConfigError naming the entry and key."""
    if not isinstance(specs, list):
        raise ConfigError(f"{where} must be a list of {{name, weight, ...}} entries, got {specs!r}")
    for i, spec in enumerate(specs):
        at = f"{where}[{i}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{at} needs a name; known terms: {sorted(AUXILIARIES)}")
        if spec["name"] not in AUXILIARIES:
            raise ConfigError(f"{at}.name: {spec['name']!r} is not one of {sorted(AUXILIARIES)}")
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{at}.weight must be a number ≥ 0, got {weight!r}")
        dropout = spec.get("dropout", 0.0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(f"{at}.dropout must be in [0, 1), got {dropout!r}")
        AUXILIARIES[spec["name"]].check({k: v for k, v in spec.items() if k not in SPEC_KEYS}, at)


def log_key(name: str, index: int, names: list[str]) -> str:
    """The log name of term ``index``: ``jepa_loss`` for ``llm-jepa`` (as always), else ``<name>_loss``;
    ``_<index>`` is added when the name occurs more than once."""
    base = "jepa" if name == "llm-jepa" else name.replace("-", "_")
    return f"{base}_loss" if names.count(name) == 1 else f"{base}_{index}_loss"


@dataclass
class Parts:
    """One step's objective: ``loss`` (the scalar to back-propagate), each computed term's value
    (``values``: log key → () tensor, with graph for trained terms) and ``trained`` (log keys in the loss)."""

    loss: torch.Tensor
    values: dict
    trained: list


class Objective(nn.Module):
    """γ·L_NTP + Σ weight_i·A_i over registered terms (``AUXILIARIES``).

    Args:
        specs: the checked ``objectives`` list (``check_specs``).
        gamma: γ, the weight of L_NTP.
        hidden_size: the model's width (for terms with parameters, e.g. ``llm-jepa`` with ``predictor: mlp``).
    """

    def __init__(self, specs: list[dict], gamma: float = 1.0, hidden_size: int | None = None):
        super().__init__()
        check_specs(specs)
        self.gamma = gamma
        self.names = [s["name"] for s in specs]
        self.keys = [log_key(name, i, self.names) for i, name in enumerate(self.names)]
        self.weights = [float(s.get("weight", getattr(AUXILIARIES[s["name"]], "DEFAULT_WEIGHT", 1.0))) for s in specs]
        self.dropouts = [float(s.get("dropout", 0.0)) for s in specs]
        self.compensate = [bool(s.get("compensate", False)) for s in specs]
        self.terms = nn.ModuleList()
        for spec in specs:
            cls: type[Auxiliary] = AUXILIARIES[spec["name"]]
            params = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
            self.terms.append(cls(hidden_size=hidden_size, **params) if cls.name == "llm-jepa" else cls(**params))
        targets = {t.needs().target for t in self.terms if t.needs().views} - {"live"}
        if len(targets) > 1:
            raise ConfigError(f"objectives: the view terms ask for different targets {sorted(targets)}; "
                              "Enc(Code) is computed once per step")

    def dropped(self, seed: int, step: int) -> list[bool]:
        """Per term, whether loss dropout skips it at optimizer step ``step``."""
        return [jepa_dropped(seed, step, alpha, term=i) for i, alpha in enumerate(self.dropouts)]

    def needs(self, which: list[bool]) -> Needs:
        """The union of the needs of the terms selected by ``which``."""
        selected = [t.needs() for t, w in zip(self.terms, which) if w]
        return Needs(views=any(n.views for n in selected), layers=tuple(sorted({l for n in selected for l in n.layers})),
                     lm_head=any(n.lm_head for n in selected),
                     target=next((n.target for n in selected if n.views and n.target != "live"), "live"))

    @property
    def target(self) -> str:
        """How Enc(Code) is computed for this objective: ``live``, ``stop-grad`` or ``ema``."""
        return self.needs([True] * len(self.terms)).target

    def forward(self, ntp: torch.Tensor, train: list[bool], step: Step | None, accumulation: int = 1,
                monitor: list[bool] | None = None, monitor_step: Step | None = None) -> Parts:
        """``γ·ntp + Σ_{i trained} weight_i'·A_i / accumulation`` (weight' = weight/(1 − α) with
        ``compensate``). ``train[i]``: term i is in the loss (its step: ``step``); ``monitor[i]``: term i
        is only evaluated, without gradient (on ``monitor_step``)."""
        loss = self.gamma * ntp
        values, trained = {}, []
        for i, term in enumerate(self.terms):
            if train[i]:
                value = term(step)
                weight = self.weights[i] / (1 - self.dropouts[i]) if self.compensate[i] else self.weights[i]
                loss = loss + weight * value / accumulation
                values[self.keys[i]] = value
                trained.append(self.keys[i])
            elif monitor and monitor[i]:
                with torch.no_grad():
                    values[self.keys[i]] = term(monitor_step)
        return Parts(loss, values, trained)
