"""What made a results store's records: the code and the machines behind each row, the ``lmjepa compare``
report's "Records" section.

A reviewer who reads a number wants to know what produced it. Every row of a store records the code it ran
(``code_version``: ``lmjepa <version> <commit>``, ``+dirty`` when tracked files had uncommitted changes, as
``pipeline.sweep.code_version`` writes it) and, from lmjepa f0ff8cd on, where it trained (``metrics.environment``:
torch, transformers, python, device, processor, threads; ``training.run.environment``). This module groups the
rows by each and names the runs in each group, so that a store built over many commits, or on two machines,
says so in its report instead of in a note beside it.
"""

from __future__ import annotations

from .cost import cell_label

ENVIRONMENT = ("torch", "transformers", "python", "device", "cpu", "threads")
HEADERS = ("torch", "transformers", "python", "device", "processor", "threads")
NOT_RECORDED = "not recorded"


def _n_runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _runs(rows: list[dict]) -> str:
    """``rows`` named compactly: "`cell` seed, seed; `other` seed", cells in order of first appearance."""
    seeds: dict[str, list] = {}
    for row in rows:
        seeds.setdefault(cell_label(row), []).append(row.get("seed"))
    return "; ".join(f"`{cell}` {', '.join(str(s) for s in values)}" for cell, values in seeds.items())


def _environment(row: dict) -> tuple:
    environment = (row.get("metrics") or {}).get("environment")
    if not isinstance(environment, dict):
        return ()
    return tuple(str(environment.get(key, "–")) for key in ENVIRONMENT)


def records_by(rows: list[dict]) -> dict[str, dict]:
    """``{"code": {version: [rows]}, "environment": {(torch, transformers, python, device, cpu, threads) | ():
    [rows]}}``, each group in the rows' order of first appearance; a row without ``code_version`` is grouped
    under ``"not recorded"``, one without an environment under ``()``. ``rows``: store rows (``cell``,
    ``seed``, ``metrics``; optional ``code_version``, ``stage``)."""
    code: dict[str, list] = {}
    environment: dict[tuple, list] = {}
    for row in rows:
        code.setdefault(str(row.get("code_version") or NOT_RECORDED), []).append(row)
        environment.setdefault(_environment(row), []).append(row)
    return {"code": code, "environment": environment}


def render_origin(rows: list[dict], title: str = "Records", note: str = "") -> list[str]:
    """The report's ``title`` section as Markdown lines (``note`` ends its opening paragraph): a table of the
    code versions with the runs each made, and a table of the environments (a row per distinct torch,
    transformers, python, device, processor and thread count) with theirs. A ``+dirty`` version, or runs
    that record no environment, get a sentence saying what that leaves unknown. ``[]`` for no rows."""
    if not rows:
        return []
    groups = records_by(rows)
    lines = ["", f"## {title}", "",
             f"The {len(rows)} runs of the store, by the code that made them (each row's `code_version`: the "
             "commit its sweep started on) and by where they trained (`analysis.origin`)."
             + (f" {note}" if note else ""), "",
             "| code | runs | which |", "|---|---|---|"]
    lines += [f"| `{version}` | {len(group)} | {_runs(group)} |" for version, group in groups["code"].items()]
    dirty = [row for version, group in groups["code"].items() if version.endswith("+dirty") for row in group]
    if dirty:
        lines += ["", f"{_n_runs(len(dirty))} marked `+dirty` ran from a checkout whose tracked files had "
                  "uncommitted changes; what those changes were is not recorded."]
    lines += ["", "| " + " | ".join(HEADERS) + " | runs | which |", "|" + "---|" * (len(ENVIRONMENT) + 2)]
    for key, group in groups["environment"].items():
        values = key or (NOT_RECORDED,) + ("",) * (len(ENVIRONMENT) - 1)
        lines.append("| " + " | ".join(values) + f" | {len(group)} | {_runs(group)} |")
    unknown = len(groups["environment"].get((), []))
    if unknown:
        lines += ["", f"{_n_runs(unknown)} {'records' if unknown == 1 else 'record'} no environment (rows written "
                  "before lmjepa recorded one): which versions and processor they ran on is not known from the store."]
    return lines
