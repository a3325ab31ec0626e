"""The comparison commands. ``lmjepa compare``: cells of results stores against a baseline, corrected for the
family tested (``stats.compare``), with the generalisation gap per extra task (``stats.generalisation``); or two
runs' predictions by McNemar's exact test. ``lmjepa probe``: pretrained encoders side by side on linear probes."""

from __future__ import annotations

from pathlib import Path

from ..analysis.encoder_probes import majority_baselines, probe_runs, write_probe_report
from ..stats.compare import compare, load_stores, mcnemar_runs, split_store, write_report
from ..stats.generalisation import gap_table


def compare_stores(results: list[str], baseline: str, metrics: list[str], cells: list[str] | None = None,
                   correction: str = "holm", alpha: float = 0.05, task: list[str] | None = None,
                   out: str | Path | None = None) -> Path:
    """Compare every cell of the stores ``results`` (``PATH`` or ``LABEL=PATH`` each, ``load_stores``) with
    ``baseline`` on ``metrics``; with ``task``, also the generalisation gap on those extra tasks. Writes
    report.md, stats.json and deltas.png into ``out`` (default: ``compare/`` beside the first store) and returns
    the report's path. Raises ConfigError / DataError on bad input (``stats.compare``)."""
    rows = load_stores(results, cells)
    result = compare(rows, baseline, metrics, correction, alpha)
    if task:
        result["generalisation"] = gap_table(rows, baseline, result["metrics"], task, correction, alpha)
    return write_report(result, out or Path(split_store(results[0])[1]).parent / "compare", rows)


def mcnemar(run_a: str | Path, run_b: str | Path) -> dict:
    """McNemar's exact test on two runs' exact-match correctness, example by example (``stats.compare.mcnemar_runs``):
    ``{"b": right only in run_a, "c": right only in run_b, "p": two-sided exact p}``."""
    return mcnemar_runs(run_a, run_b)


def probe(runs: list[str], data_dir: str | None = None, max_train: int = 8000, max_eval: int | None = None,
          seed: int = 0, head_seeds: int = 5, force: bool = False, out: str | Path | None = None) -> str:
    """Probe each pretrained encoder (``analysis.encoder_probes.probe_runs``, cached per run) beside the
    majority-label baselines; return the Markdown table (also written into ``out`` with the training curves)."""
    rows = probe_runs(runs, data_dir, max_train, max_eval, seed, head_seeds, force)
    chance = majority_baselines(data_dir, max_train, max_eval)
    return write_probe_report(runs, rows, chance, out)
