"""Sweep and audit specs as schemas: the same loader and checks as run configs (``config._build``).

A spec file is read once by ``read_spec``, which checks every key against ``SweepSpec`` (an unknown key names
the closest known one: ``seed`` → "did you mean 'seeds'"), every value's type and range, and returns the
mapping the sweep and the audit read. Raises ConfigError (one line, rc 2 at the CLI) before anything is
created. Cell overrides are checked later, against the base config (``RunConfig.with_overrides``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ..config import _build, choice, read_yaml
from ..errors import ConfigError

LAUNCHER_NAMES = ("local", "ray", "slurm")


@dataclass
class PretrainStage:
    """A two-stage spec's first stage (``plan_nested``)."""

    base: str | None = None            # the pretraining run config, relative to the spec
    seeds: list[int] | None = None     # pretraining seeds
    overrides: dict = field(default_factory=dict)


@dataclass
class AuditSettings:
    """The ``audit:`` section (``analysis.audit.settings`` checks what it names)."""

    baseline: str | None = None        # the reference cell
    family: list[str] | None = None    # the metrics tested (Holm over cells × these)
    geometry_rows: int = 200           # test rows for each model's geometry
    contrasts: list | None = None      # [[cell, reference], ...]


@dataclass
class SweepSpec:
    """``lmjepa sweep`` / ``lmjepa audit`` spec: cells × seeds over one base run config."""

    base: str | None = None            # the base run config, relative to the spec
    output_dir: str | None = None
    seeds: list[int] | None = None     # default: the paper's 82, 23, 37, 84, 4
    cells: dict = field(default_factory=dict)      # name -> {dotted key: value}
    grid: dict = field(default_factory=dict)       # dotted key -> [values]: the Cartesian product
    overrides: dict = field(default_factory=dict)  # applied to the base before every cell
    concurrency: int = 1
    launcher: str = choice("local", LAUNCHER_NAMES)
    address: str | None = None         # a running Ray cluster
    resources: dict = field(default_factory=dict)
    slurm: dict = field(default_factory=dict)
    evaluate_on: list[str] = field(default_factory=list)
    pretrain: PretrainStage | None = None
    audit: AuditSettings | None = None


def _sections_present(values: dict) -> dict:
    """``_build`` builds nested sections from mappings; a null section stays null."""
    return {k: v for k, v in values.items() if not (k in ("pretrain", "audit") and v is None)}


def read_spec(path: str | Path) -> dict:
    """The spec at ``path`` as a mapping, checked against ``SweepSpec``.

    Raises ConfigError naming the file and the key: an unknown key (with the closest known one), a value of the
    wrong type, ``concurrency`` < 1, a missing ``base`` or ``output_dir``, or no ``cells`` and no ``grid``.
    """
    values = read_yaml(path)
    try:
        spec = _build(SweepSpec, _sections_present(values), "")
        for key, ok, allowed in (("concurrency", spec.concurrency >= 1, "≥ 1"),
                                 ("base", bool(spec.base), "the base run config's path"),
                                 ("output_dir", bool(spec.output_dir), "a folder"),
                                 ("cells", bool(spec.cells or spec.grid), "at least one cell (or a grid)")):
            if not ok:
                raise ConfigError(f"spec key {key!r} must be {allowed}")
        for name, overrides in spec.cells.items():
            if overrides is not None and not isinstance(overrides, dict):
                raise ConfigError(f"cell {name!r} expects a mapping of overrides, got {overrides!r}")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return values


def expand_cells(spec: dict) -> dict[str, dict]:
    """Named cells plus the grid's Cartesian product (named ``key=value,key=value``)."""
    cells = {name: dict(overrides or {}) for name, overrides in (spec.get("cells") or {}).items()}
    grid = spec.get("grid") or {}
    for values in itertools.product(*grid.values()) if grid else []:
        overrides = dict(zip(grid, values))
        cells[",".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items())] = overrides
    if not cells:
        raise ConfigError("the sweep spec needs 'cells' or 'grid'")
    return cells
