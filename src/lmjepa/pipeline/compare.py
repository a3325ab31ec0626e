"""The comparison commands. ``lmjepa compare``: cells of results stores against a baseline, corrected for the
family tested (``stats.compare``), with the generalisation gap per extra task (``stats.generalisation``); or two
runs' predictions by McNemar's exact test; or a seed-paired 2 × 2 (``analysis.factorial``). ``lmjepa probe``: pretrained encoders side by side on linear probes."""

from __future__ import annotations

from pathlib import Path

from ..analysis.cost import render_cost
from ..analysis.encoder_probes import majority_baselines, probe_runs, write_probe_report
from ..analysis.factorial import Design, analyse, load, plot, render
from ..analysis.origin import render_origin
from ..analysis.predictions import check_names, load_predictions, section
from ..errors import ConfigError
from ..io import atomic_write_text
from ..stats.compare import compare, load_stores, mcnemar_runs, runs_by_cell, split_store, write_report
from ..stats.generalisation import gap_table
from .provenance import provenance


def compare_stores(results: list[str], baseline: str, metrics: list[str], cells: list[str] | None = None,
                   correction: str = "holm", alpha: float = 0.05, task: list[str] | None = None,
                   out: str | Path | None = None, predictions: str | Path | None = None) -> Path:
    """Compare every cell of the stores ``results`` (``PATH`` or ``LABEL=PATH`` each, ``load_stores``) with
    ``baseline`` on ``metrics``; with ``task``, also the generalisation gap on those extra tasks. Writes
    report.md, stats.json and deltas.png into ``out`` (default: ``compare/`` beside the first store) and returns
    the report's path. With ``predictions`` (a YAML file, ``analysis.predictions.load_predictions``) the report
    also checks each pre-registered prediction against the records, over the seeds its cells share. The report
    ends with what each cell cost to run (``analysis.cost``).
    Raises ConfigError / DataError on bad input (``stats.compare``, ``load_predictions``, ``check_names``)."""
    claims = load_predictions(predictions) if predictions else []
    rows = load_stores(results, cells)
    runs = _checked_runs(rows, claims, f"{', '.join(results)}: ")
    result = compare(rows, baseline, metrics, correction, alpha)
    if task:
        result["generalisation"] = gap_table(rows, baseline, result["metrics"], task, correction, alpha)
    extra = []
    if claims:
        seeds = sorted(set().union(*(set(by_seed) for by_seed in runs.values())))
        note = provenance(predictions, rows, split_store(results[0])[1])
        extra = section(claims, runs, seeds, str(predictions), note)
    extra += render_cost(rows, baseline) + render_origin(rows)
    return write_report(result, out or Path(split_store(results[0])[1]).parent / "compare", rows, extra)


def _checked_runs(rows: list[dict], claims: list, where: str) -> dict[str, dict[int, dict]]:
    """cell → seed → metrics of ``rows``, after checking that ``claims`` (predictions) name only cells and
    metrics the rows have. Raises ConfigError otherwise, or for a two-stage (nested) store."""
    runs, nested = runs_by_cell(rows, [])
    if claims and nested is not None:
        raise ConfigError(f"{where}--predictions needs a single-stage store (this one nests pretraining seeds)")
    check_names(claims, runs, where)
    return runs


def interaction_report(store: str | Path, cells: list[str], conditions: tuple[str, str] = ("A", "B"),
                       objectives: tuple[str, str] | None = None, out: str | Path | None = None,
                       predictions: str | Path | None = None) -> Path:
    """The seed-paired 2 × 2 of one store: ``cells`` = [base A, treated A, base B, treated B], i.e. objective
    {base, treated} × conditions {A, B}, paired by seed. On exact match (percentage points): each simple effect
    with its content / termination split, the interaction (treated B − base B) − (treated A − base A) with a
    95 % t-interval and two-sided p, the secondary metrics, the row-level model from the runs'
    ``predictions.jsonl`` (``<store folder>/<cell>/seed-<seed>-<hash>/``). Writes report.md and interaction.png
    into ``out`` (default: ``interaction/`` beside the store) and returns the report's path. With
    ``predictions`` (a YAML file, ``analysis.predictions.load_predictions``), the report also checks each
    pre-registered prediction against the records, over the complete seed blocks. It ends with what each cell
    of the store cost to run, against base A (``analysis.cost``).

    Raises ConfigError if a cell (of the four, or named by a prediction) is not in the store, if the predictions
    file is malformed, or if fewer than 2 seeds have all four cells."""
    store = Path(store)
    if len(cells) != 4 or len(set(cells)) != 4:
        raise ConfigError(f"--interaction needs 4 different cells (base A, treated A, base B, treated B); got {cells}")
    claims = load_predictions(predictions) if predictions else []
    by_cell, rows = load(store)
    missing = [c for c in cells if c not in by_cell]
    if missing:
        raise ConfigError(f"{store}: no runs of cell(s) {missing}; the store has {sorted(by_cell)}")
    runs = _checked_runs(rows, claims, f"{store}: ")
    design = Design(*cells, conditions=conditions, objectives=objectives or (cells[0], cells[1]), verdicts=False)
    try:
        result = analyse(design, store.parent)
    except ValueError as error:
        raise ConfigError(f"{store}: {error}") from None
    folder = Path(out) if out else store.parent / "interaction"
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.md"
    command = f"lmjepa compare {store} --interaction {' '.join(cells)}" + (f" --predictions {predictions}"
                                                                           if predictions else "")
    text = render(design, result, command)
    if claims:  # over the complete blocks of the four cells, as every statistic of the 2 × 2
        note = provenance(predictions, rows, store)
        text += "\n".join(section(claims, runs, result["seeds"], str(predictions), note)) + "\n"
    text += "".join(f"{line}\n" for line in render_cost(rows, cells[0]) + render_origin(rows))
    atomic_write_text(report, text)
    plot(design, result, folder / "interaction.png")
    return report


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
