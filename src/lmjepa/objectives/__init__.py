"""Objectives: the LLM-JEPA term and the audit's auxiliaries as registered terms (``AUXILIARIES``),
combined by ``Objective`` into ``γ·L_NTP + Σ_i weight_i · A_i``; and the Predict-and-Reconstruct loss.

``lmjepa objectives`` prints the registry (name, family, formula, source). A term is one file here: every module
of this package (but the machinery below) is imported on first use, and its ``@register`` classes join the
registry — adding a term touches that file and its test, nothing else (docs: "Add an objective in one file")."""

import importlib
import pkgutil

from .base import AUXILIARIES, FAMILIES, Auxiliary, Needs, Step, register
from .objective import Objective, check_specs

MACHINERY = {"base", "objective", "monitors", "predict_reconstruct"}  # modules that hold no registered term
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in MACHINERY:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["AUXILIARIES", "FAMILIES", "Auxiliary", "Needs", "Objective", "Step", "check_specs", "register"]
