"""Auxiliary objectives as registered terms: ``L = γ·L_NTP + Σ_i weight_i · A_i``.

A term is a small ``torch.nn.Module`` deriving from ``Auxiliary``. It declares, as class attributes,
its registry ``name``, the audit ``family`` it belongs to, its ``formula`` in one line, its ``source``,
its parameters with their defaults (``PARAMS``) and the allowed values of the choice-valued ones
(``CHOICES``). It says what it needs from the forward (``needs()``: the views, hidden states of the full
sequence at some layers, the LM-head weight, an EMA target) and computes its value from a ``Step``
— which the trainer fills once per step however many terms share a need. A term never sees the
model itself, except through ``Step.lm_head`` (the unembedding weight).

Families (the JEPA audit, ``shared/papers/000_*``): ``trajectory`` (trajectory-shape regularisation),
``distribution`` (distributional constraints), ``asymmetry`` (predictor/target asymmetry), ``fisher``
(Fisher-metric residuals), ``decoder`` (decoder-visible JEPA), and ``jepa`` (LLM-JEPA itself).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError

FAMILIES = ("jepa", "trajectory", "distribution", "asymmetry", "fisher", "decoder")


def span_masks(spans: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(user, answer), each (B, length) bool: the positions of ``spans`` (B, 4) long
    ``[user start, user end, answer start, answer end)``."""
    positions = torch.arange(length, device=spans.device)[None]
    return ((positions >= spans[:, :1]) & (positions < spans[:, 1:2]),
            (positions >= spans[:, 2:3]) & (positions < spans[:, 3:4]))


def content_mask(spans: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the user and assistant content tokens (``spans`` (B, 4) as ``Step.spans``)."""
    user, answer = span_masks(spans, attention_mask.shape[1])
    return (user | answer) & attention_mask.bool()


@dataclass(frozen=True)
class Needs:
    """What a term needs from one training step's forward."""

    views: bool = False  # Pred(Enc(Text)) and Enc(Code)
    layers: tuple[int, ...] = ()  # full-sequence hidden states at these layers (-1 = the last)
    lm_head: bool = False  # the unembedding weight W (V, D)
    target: str = "live"  # how Enc(Code) is computed: live, stop-grad or ema


@dataclass
class Step:
    """One training step's inputs to the terms, each computed once.

    ``hidden``: layer → (B, L, D) full-sequence hidden states; ``attention_mask`` (B, L); ``spans`` (B, 4)
    long ``[user start, user end, answer start, answer end)``; ``pred`` / ``target`` (B, D): Pred(Enc(Text))
    and Enc(Code); ``lm_head`` (V, D); ``step``: the optimizer step; ``seed``: the run's seed.
    """

    hidden: dict = field(default_factory=dict)
    attention_mask: torch.Tensor | None = None
    spans: torch.Tensor | None = None
    pred: torch.Tensor | None = None
    target: torch.Tensor | None = None
    lm_head: torch.Tensor | None = None
    step: int = 0
    seed: int = 0

    def content_mask(self) -> torch.Tensor:
        """(B, L) bool: the user and the assistant content tokens of each row."""
        return content_mask(self.spans, self.attention_mask)


class Auxiliary(nn.Module):
    """Base of a registered term. Subclasses set the class attributes and implement ``forward``."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    source: ClassVar[str] = ""
    PARAMS: ClassVar[dict] = {}
    CHOICES: ClassVar[dict] = {}

    def __init__(self, **params):
        super().__init__()
        self.params = {**self.PARAMS, **params}

    @classmethod
    def check(cls, params: dict, where: str) -> None:
        """Raise ConfigError naming ``where`` and the key for an unknown parameter, a value outside its choices,
        or a value whose type is not its default's (an int default takes an int, a float one any number, a bool
        one true/false, a string one a string; a None default takes anything)."""
        for key, value in params.items():
            if key not in cls.PARAMS:
                raise ConfigError(f"{where}: unknown parameter {key!r} of {cls.name!r}; known: {sorted(cls.PARAMS)}")
            if key in cls.CHOICES:
                if value not in cls.CHOICES[key]:
                    raise ConfigError(f"{where}.{key}: {value!r} is not one of {list(cls.CHOICES[key])}")
                continue
            default = cls.PARAMS[key]
            kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(type(default))
            if kinds and (not isinstance(value, kinds) or (isinstance(value, bool) and type(default) is not bool)):
                raise ConfigError(f"{where}.{key}: expects {type(default).__name__} like its default {default!r}, "
                                  f"got {value!r}")

    def needs(self) -> Needs:
        return Needs()

    def forward(self, step: Step) -> torch.Tensor:  # () float: the term's value A_i
        raise NotImplementedError


AUXILIARIES: dict[str, type[Auxiliary]] = {}


def register(cls: type[Auxiliary]) -> type[Auxiliary]:
    """Class decorator: add a term to ``AUXILIARIES`` under ``cls.name``. Raises ValueError if taken."""
    if cls.name in AUXILIARIES:
        raise ValueError(f"auxiliary {cls.name!r} is already registered")
    if cls.family not in FAMILIES:
        raise ValueError(f"auxiliary {cls.name!r}: family {cls.family!r} is not one of {FAMILIES}")
    AUXILIARIES[cls.name] = cls
    return cls


@contextmanager
def full_precision(*tensors: torch.Tensor):
    """Autocast off, and ``tensors`` promoted to at least float32 (float64 stays float64); yields them.

    For statistics of the auxiliary terms under ``train.precision: bf16``: autocast would run their matmuls
    in bf16 (8 significant bits), which rounds away the small differences they measure (a KL between
    nearly equal distributions, a projection fed to cos/sin), and some ops have no bf16 kernel (pdist)."""
    with torch.autocast(tensors[0].device.type, enabled=False):
        yield tuple(t.to(torch.promote_types(t.dtype, torch.float32)) for t in tensors)
