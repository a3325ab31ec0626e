"""Where a sweep stands, and how long the rest will take, without running or changing anything.

``lmjepa sweep SPEC --status`` prints, per cell: the runs finished (rows in the store), in flight (a run
folder with a checkpoint but no row: the step it resumes from) and still to run, the median wall time of
the cell's finished runs, and the time left. Estimates come from the store's own rows, so they are measured
on the machine that made them:

* a run still to run takes the median ``wall_seconds`` of its cell's finished runs; a cell with none yet
  borrows those of the nearest finished cells: the ones whose resolved config differs from its own in the
  fewest settings (seed, name and folders aside), pooled when several tie, and named in the table;
* a run in flight at step s of N takes that, less the training already done: median ``train_seconds`` × s / N
  (``metrics.train_seconds``; where rows lack it, median ``wall_seconds`` × s / N);
* the total is divided by the sweep's concurrency.

A run in flight whose training is done (its ``model/`` saved) is shown as evaluating, with the number of
generation batches its ``generations.partial.jsonl`` holds (``evaluation.generate.GenerationLog``).

Nothing is locked, renamed or written: a checkpoint is read only for its ``trainer_state.json``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..training import run_folder
from .sweep import config_hash, finished, plan_phases


def checkpoint_progress(folder: str | Path) -> tuple[int, int] | None:
    """``(global_step, max_steps)`` of the newest readable checkpoint in ``folder``
    (``run_folder.checkpoint_state``, read-only), or None."""
    state = run_folder.checkpoint_state(folder)
    return None if state is None else (int(state["global_step"]), int(state.get("max_steps") or 0))


def generated_batches(folder: str | Path) -> int | None:
    """The generation batches an evaluation in ``folder`` has finished (lines of its partial generations file),
    or None when its training is not done (no ``model/``). Read-only."""
    folder = Path(folder)
    if not (folder / "model").is_dir():
        return None
    partial = folder / run_folder.PARTIAL_GENERATIONS
    return len(partial.read_text().splitlines()) if partial.is_file() else 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


PER_RUN = ("name", "output_dir", "variants", "train.seed", "data.data_dir", "model.init_from")  # not a setting


def settings(config) -> dict:
    """The config's settings as dotted key → value (``train.learning_rate``), without what differs between the
    runs of one cell (``PER_RUN``: seed, name, folders)."""
    flat: dict = {}

    def walk(values: dict, prefix: str) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(config.to_dict(), "")
    return {k: v for k, v in flat.items() if not any(k == p or k.startswith(p + ".") for p in PER_RUN)}


def nearest(own: dict, others: dict[str, dict]) -> tuple[list[str], int]:
    """The names in ``others`` (name → ``settings``) whose settings differ from ``own`` in the fewest keys (a key
    one side lacks counts as differing), and that number. Raises ValueError if ``others`` is empty."""
    missing = object()
    distance = {name: sum(own.get(k, missing) != theirs.get(k, missing) for k in own.keys() | theirs.keys())
                for name, theirs in others.items()}
    best = min(distance.values())
    return [name for name in others if distance[name] == best], best


def sweep_status(spec_path: str | Path, output_dir: str | None = None, concurrency: int | None = None) -> dict:
    """The sweep's state: ``{"store", "concurrency", "cells": {cell: {"done", "in_flight", "to_run",
    "median_wall", "estimated_from", "seconds_left"}}, "seconds_left", "runs_left"}``.

    A two-stage spec's cells are listed per stage, ``"<cell> (pretrain)"`` and ``"<cell> (finetune)"``.
    ``done`` and ``to_run`` are seed lists; ``in_flight`` is ``[(seed, step, max_steps)]``; ``evaluating`` maps
    the seeds in flight whose training is done to their generated batches so far; times are in
    seconds, None where no finished run gives an estimate; ``concurrency`` (default: the spec's) divides the
    total. Raises ConfigError as ``sweep.plan``; DataError
    naming ``store:line`` for a malformed store row."""
    out, phases, spec_concurrency = plan_phases(spec_path, output_dir)
    concurrency = max(1, concurrency or spec_concurrency)
    store = out / "results.jsonl"
    done = finished(store)
    cells: dict[str, dict] = {}
    walls: dict[str, list[float]] = {}
    trains: dict[str, list[float]] = {}
    configs: dict[str, dict] = {}
    for runs in phases:
        for cell, seed, config, extra in runs:
            label = f"{cell} ({extra['stage']})" if extra.get("stage") else cell  # two-stage: per stage
            entry = cells.setdefault(label, {"done": [], "in_flight": [], "to_run": [], "evaluating": {}})
            configs.setdefault(label, settings(config))
            row = done.get((cell, seed, config_hash(config)))
            if row is not None:
                entry["done"].append(seed)
                if isinstance(row.get("wall_seconds"), (int, float)):
                    walls.setdefault(label, []).append(float(row["wall_seconds"]))
                    train = (row.get("metrics") or {}).get("train_seconds")
                    if isinstance(train, (int, float)):
                        trains.setdefault(label, []).append(float(train))
            elif (progress := checkpoint_progress(config.output_dir)) is not None:
                entry["in_flight"].append((seed, *progress))
                if (batches := generated_batches(config.output_dir)) is not None:
                    entry["evaluating"][seed] = batches
            else:
                entry["to_run"].append(seed)
    total, complete = 0.0, True
    for cell, entry in cells.items():
        if cell in walls:
            donors, note = [cell], f"{_runs(len(walls[cell]))} of the cell"
        elif walls:
            donors, differ = nearest(configs[cell], {c: configs[c] for c in walls})
            pooled = sum(len(walls[c]) for c in donors)
            note = (f"{_runs(pooled)} of {', '.join(f'`{c}`' for c in donors)} (nearest config: "
                    f"{differ} setting{'' if differ == 1 else 's'} differ{'s' if differ == 1 else ''})")
        else:
            donors, note = [], "no finished run"
        wall = _median([w for c in donors for w in walls[c]])
        train = _median([t for c in donors for t in trains.get(c, [])])
        entry["median_wall"] = wall
        entry["estimated_from"] = note
        if wall is None:
            entry["seconds_left"] = None
            complete = complete and not (entry["to_run"] or entry["in_flight"])
            continue
        per_step = (train if train is not None else wall)
        left = wall * len(entry["to_run"]) + sum(max(wall - per_step * step / max(steps, 1), 0.0)
                                                 for _, step, steps in entry["in_flight"])
        entry["seconds_left"] = left
        total += left
    runs_left = sum(len(e["to_run"]) + len(e["in_flight"]) for e in cells.values())
    return {"store": store, "concurrency": concurrency, "cells": cells, "runs_left": runs_left,
            "seconds_left": total / concurrency if complete else None}


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def render_status(status: dict) -> str:
    """``sweep_status`` as a Markdown table and a closing line (times in minutes below 1.5 h, else hours)."""
    lines = [f"Sweep store: {status['store']}", "",
             "| cell | finished | in flight (step of N) | to run | median wall per run | time left | estimated from |",
             "|---|---|---|---|---|---|---|"]
    for cell, e in status["cells"].items():
        flight = ", ".join(f"seed {s}: {step}/{steps}" + (f", evaluating ({e['evaluating'][s]} batches generated)"
                                                          if s in e["evaluating"] else "")
                           for s, step, steps in e["in_flight"]) or "–"
        wall = _hours(e["median_wall"]) if e["median_wall"] is not None else "–"
        lines.append(f"| {cell} | {len(e['done'])} | {flight} | {len(e['to_run'])} | {wall} | "
                     f"{_hours(e['seconds_left'])} | {e['estimated_from']} |")
    left = status["runs_left"]
    if not left:
        lines += ["", "Every run is finished."]
    else:
        lines += ["", f"{_runs(left)} left: about {_hours(status['seconds_left'])} at concurrency "
                      f"{status['concurrency']} (medians of the finished runs' `wall_seconds` on the machine that "
                      "made them)." if status["seconds_left"] is not None else
                  f"{_runs(left)} left; no estimate of the time yet: a cell with runs left has no finished run to "
                  "measure it by (finish one run first)."]
    return "\n".join(lines)
