"""Objectives: the LLM-JEPA term and the audit's auxiliaries as registered terms (``AUXILIARIES``),
combined by ``Objective`` into ``γ·L_NTP + Σ_i weight_i · A_i``; and the Predict-and-Reconstruct loss.

``lmjepa objectives`` prints the registry (name, family, formula, source)."""

from .base import AUXILIARIES, FAMILIES, Auxiliary, Needs, Step, register
from .objective import Objective, check_specs

__all__ = ["AUXILIARIES", "FAMILIES", "Auxiliary", "Needs", "Objective", "Step", "check_specs", "register"]
