"""Markdown tables of finished runs: what ``lmjepa train`` prints and ``lmjepa table`` writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import RunFolderError
from .tasks import METRICS


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown table, one row per run: task, λ, k, the task's metric and exact match (in %), n, wall times (s),
    and training CPU seconds (``train_cpu_seconds``: every thread, not moved by a pause) when any run records them."""
    cpu = any("train_cpu_seconds" in m for m in results.values())
    lines = ["| run | task | λ | k | metric | % | exact match % | details | n | train s | "
             + ("train CPU s | " if cpu else "") + "eval s |", "|" + "---|" * (12 if cpu else 11)]
    for name, m in results.items():
        metric = m.get("metric", "regex")
        key = METRICS.get(metric, (f"{metric}_match",))[0]
        value = m.get(key)
        details = []
        if "semantic_match_nondegenerate" in m:
            details.append(f"non-degenerate targets {m['semantic_match_nondegenerate']:.2f}% (n={m.get('n_nondegenerate')})")
        if m.get("undecided"):
            details.append(f"{m['undecided']} undecided")
        if "note" in m:
            details.append(m["note"])
        if m.get("evaluated") is False:
            details.append("not evaluated (eval.skip: a pretraining stage)")
        if "invalid" in m:
            details.append(f"{m['invalid']} not a label")
        if "answer_marker_rate" in m:
            details.append(f"'#### N' in {m['answer_marker_rate']:.1f}%; last number right {m['last_number_match']:.1f}%")
        if "contains_target" in m:  # content vs termination (evaluation/diagnostics.py)
            stopped = f"{m['stopped']:.1f}%" if "stopped" in m else "not recorded"
            extra = "n/a" if m.get("mean_extra_tokens") is None else f"{m['mean_extra_tokens']:.1f}"
            details.append(f"contains target {m['contains_target']:.1f}%, stopped {stopped}, exact if cut at "
                           f"line break {m['exact_if_truncated']:.1f}%, extra tokens {extra}")
        lines.append(
            f"| {name} | {m.get('task', 'nlrx-synth')} | {'—' if m.get('lbd', '') is None else m.get('lbd', '')} | {m.get('predictors', '')} | {key} | "
            f"{'' if value is None else f'{value:.2f}'} | "
            f"{'' if m.get('exact_match') is None else format(m['exact_match'], '.2f')} | {'; '.join(details)} | "
            f"{m.get('n', '')} | "
            f"{m.get('train_seconds', '')} | " + (f"{m.get('train_cpu_seconds', '')} | " if cpu else "")
            + f"{m.get('eval_seconds', '')} |"
        )
    return "\n".join(lines) + "\n"


def table_of_runs(runs: list[str | Path]) -> str:
    """``comparison_table`` of finished run folders, rows named by the path below their common folder
    (the run folder's name for one run). Raises RunFolderError for a folder without ``metrics.json``."""
    results = {}
    common = os.path.commonpath([str(Path(r).resolve()) for r in runs]) if len(runs) > 1 else None
    for run in runs:
        path = Path(run) / "metrics.json"
        if not path.is_file():
            raise RunFolderError(f"{path}: not found (is {run} a finished run?)")
        name = os.path.relpath(Path(run).resolve(), common) if common else Path(run).resolve().name
        results[name if name != "." else str(run)] = json.loads(path.read_text())
    return comparison_table(results)
