"""``lmjepa sweep SPEC.yaml``: a grid of cells × seeds, each trained and evaluated once.

Spec::

    base: configs/nlrx-synth-smollm2.yaml     # a run config (path relative to the spec) ...
    overrides: {data.max_train_examples: 800} # ... with overrides for every cell
    output_dir: runs/sweep-nlrx
    seeds: [82, 23, 37, 84, 4]                # default: the LLM-JEPA paper's seeds
    cells:                                    # named cells (overrides of the base) ...
      ntp: {jepa.lbd: 0.0}
      llm-jepa: {jepa.lbd: 1.0}
    grid:                                     # ... and/or a Cartesian grid of any config keys
      jepa.lbd: [0.5, 1.0]
      jepa.predictors: [0, 1]
    concurrency: 1                            # runs at once; torch threads are split between them
    launcher: local                           # or ray / slurm (``--launcher``); see pipeline/launchers.py
    resources: {num_cpus: 4, num_gpus: 1}     # per run, for ray and slurm
    address: null                             # a running Ray cluster (``--address``); none: a local one
    slurm: {partition: gpu, timeout_min: 600} # submitit options (``cluster: local`` for its local executor)
    evaluate_on: [nlrx-dedup, nlrx-paraphrase] # also evaluate each trained model on these tasks (no retraining)

Each (cell, seed) runs as its own ``lmjepa train`` process in ``output_dir/<cell>/seed-<seed>-<config hash>``
(so a killed run resumes from its last checkpoint) and, when it finishes, one line is added to
``output_dir/results.jsonl`` — rewritten atomically — with the cell, seed, resolved config and its
hash, metrics, code version and wall time. A (cell, seed) whose config hash is already in the store
is never recomputed; a killed sweep loses at most the runs in flight, and a failed run is reported with its
log without stopping the others. ``evaluate_on`` tasks are evaluated into ``<run>/eval/<task>/`` once each,
also for runs finished before the task was listed: their row is added again with ``metrics_by_task`` (and
its training wall time), and a later row for the same run replaces the earlier one. Each run's environment names the sweep, cell and seed
(``LMJEPA_SWEEP``, ``LMJEPA_CELL``, ``LMJEPA_SEED``): the run tags of experiment trackers. Before its runs
start, a local sweep warns when the runs left, each the size of its newest finished run folder, need more disk
than is free (``disk_warning``): a full disk otherwise shows up only as failed saves. On a machine whose disk
does not outlive the session, keep a copy of the store elsewhere and bring it back with ``--restore COPY``
(``restore_results``): finished runs are known by their rows, so nothing is retrained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from .. import __version__
from ..training.spec import expand_cells, read_spec
from ..data.jsonl import read_rows
from ..errors import ConfigError, LmjepaError, RunFolderError
from ..io import atomic_write_text
from ..training import run_folder
from ..training.config import RunConfig, load_run_config
from .launchers import RUNNERS

PAPER_SEEDS = [82, 23, 37, 84, 4]


def _non_default(values: dict, defaults: dict) -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict) and defaults[key]:
            nested = _non_default(value, defaults[key])
            if nested:
                out[key] = nested
        elif key not in defaults or value != defaults[key]:
            out[key] = value
    return out


def config_hash(config: RunConfig) -> str:
    """sha256 (16 hex digits) of the config's non-default values, without name, output folder, variants
    and data folder.

    Hashing only what differs from the defaults keeps finished runs valid when a later version adds a
    config field with a default; a changed default is visible in each row's ``code_version``.
    """
    data = _non_default(config.to_dict(), RunConfig().to_dict())
    for key in ("name", "output_dir", "variants"):
        data.pop(key, None)
    if (data.get("model") or {}).get("init_from"):  # the pretraining run by its folder name (seed and hash),
        data["model"]["init_from"] = Path(data["model"]["init_from"]).name  # not where the sweep lies
    if isinstance(data.get("data"), dict):  # where the data lie is no part of the experiment
        data["data"].pop("data_dir", None)
        if not data["data"]:
            del data["data"]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def code_version() -> str:
    """``lmjepa <version>`` plus the git commit (``+dirty`` with uncommitted changes) when in a checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return f"lmjepa {__version__} {commit}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return f"lmjepa {__version__}"


def _seeds(values, spec_path, key: str) -> list[int]:
    """The spec's seeds (default: the paper's). Raises ConfigError for a non-integer or a repeated seed."""
    seeds = list(values or PAPER_SEEDS)
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{spec_path}: {key} must be integers, got {seed!r}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"{spec_path}: {key} repeats {repeated}: each (cell, seed) runs once")
    return seeds


def _output_folder(spec: dict, spec_path: Path, output_dir: str | None) -> Path:
    """The folder of a spec's runs and store: ``output_dir`` if given, else the spec's. Raises ConfigError if
    the spec lacks ``base`` or ``output_dir`` (a spec names both, even when ``--output-dir`` replaces it)."""
    if "base" not in spec or "output_dir" not in spec:
        raise ConfigError(f"{spec_path}: a sweep spec needs 'base' and 'output_dir'")
    return Path(output_dir or spec["output_dir"])


def plan(spec_path: str | Path, output_dir: str | None = None) -> tuple[Path, list[tuple[str, int, RunConfig]], int]:
    """Read a spec; return (output folder, [(cell, seed, resolved config)], concurrency).

    ``output_dir`` replaces the spec's. Raises ConfigError if the spec lacks ``base``/``output_dir``.
    """
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    out = _output_folder(spec, spec_path, output_dir)
    base = load_run_config(spec_path.parent / spec["base"], spec.get("overrides") or {}).without_variants()
    runs = []
    cells = expand_cells(spec)
    # Seed-major order: a sweep stopped part-way already holds complete seed-paired comparisons.
    for seed in _seeds(spec.get("seeds"), spec_path, "seeds"):
        for cell, overrides in cells.items():
            try:
                config = base.with_overrides({**overrides, "train.seed": seed, "name": f"{cell}/seed-{seed}"})
            except ConfigError as err:
                raise ConfigError(f"{spec_path}: cell {cell!r}: {err}") from None
            # The folder carries the config hash: redefining a cell gives new folders, never stale ones.
            config.output_dir = str(out / cell / f"seed-{seed}-{config_hash(config)}")
            runs.append((cell, seed, config))
    return out, runs, int(spec.get("concurrency", 1))


STORE_KEYS = ("cell", "seed", "config_hash", "metrics")  # every row of a sweep's results store has them


def finished(store: Path) -> dict[tuple[str, int, str], dict]:
    """The store's rows by (cell, seed, config hash); a later row for the same run wins. Raises DataError
    naming ``store:line`` for a malformed row (``read_rows``)."""
    if not store.exists():
        return {}
    return {(r["cell"], r["seed"], r["config_hash"]): r for r in read_rows(store, STORE_KEYS)}


def append_result(store: Path, row: dict) -> None:
    """Add one line to the store by an atomic rewrite (readers never see a partial line). Only the sweep
    calls it, from its own thread, as each run reports back."""
    existing = store.read_text() if store.exists() else ""
    atomic_write_text(store, existing + json.dumps(row) + "\n")


def restore_results(spec_path: str | Path, source: str | Path, output_dir: str | None = None) -> dict[str, int]:
    """Bring the rows of ``source`` (a copy of a store kept where it outlives the machine, e.g. committed
    beside a report) into the spec's store before anything runs, so a sweep on a fresh checkout resumes
    instead of retraining: a run counts as finished by its row, not by its folder.

    A source row for a run of this spec (same cell, seed and config hash) that the store lacks is added;
    one the store already holds keeps the store's row, with the metric keys only the source has (e.g. the
    geometry of a model since deleted) merged in. Rows of runs the spec does not plan (another definition
    of a cell, another seed) are skipped, never added. Returns the counts ``added``, ``merged``, ``skipped``.
    Raises DataError naming ``path:line`` for a missing file, bad JSON or a row without cell, seed,
    config_hash or metrics; ConfigError as ``plan``."""
    out, phases, _ = plan_phases(spec_path, output_dir)
    planned = {(c, s, config_hash(cfg)) for phase in phases for c, s, cfg, _ in phase}
    store = out / "results.jsonl"
    incoming = read_rows(source, STORE_KEYS)
    done = finished(store)
    counts = {"added": 0, "merged": 0, "skipped": 0}
    for row in incoming:
        key = (row["cell"], row["seed"], row["config_hash"])
        if key not in planned:
            counts["skipped"] += 1
        elif key not in done:
            done[key] = row
            counts["added"] += 1
        elif set(row["metrics"]) - set(done[key]["metrics"]):
            done[key] = {**done[key], "metrics": {**row["metrics"], **done[key]["metrics"]}}
            counts["merged"] += 1
    if counts["added"] or counts["merged"]:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(store, "".join(json.dumps(row) + "\n" for row in done.values()))
    return counts


def disk_warning(out: Path, done: dict, to_train: int) -> str | None:
    """A one-line warning when ``to_train`` runs, each as large on disk as the newest finished run folder of
    the store (``done``: ``finished(store)``; sizes in GB, 1e9 bytes), need more than the free space under
    ``out``; None when they fit or no finished folder is left to measure. Runs that would not fit fail at
    save and resume later, so this warns rather than stops."""
    folders = [Path(r["config"]["output_dir"]) for r in done.values() if (r.get("config") or {}).get("output_dir")]
    folders = [f for f in folders if (f / "metrics.json").is_file()]
    if not folders or to_train <= 0:
        return None
    per_run = sum(f.stat().st_size for f in folders[-1].rglob("*") if f.is_file()) / 1e9
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free / 1e9
    if per_run * to_train <= free:
        return None
    return (f"sweep: warning: {to_train} runs to go × {per_run:.2f} GB (the size of {folders[-1]}) = "
            f"{per_run * to_train:.1f} GB, but {free:.1f} GB is free under {probe}; runs that cannot save will "
            "fail and resume when space is freed")


def plan_nested(spec_path: str | Path, output_dir: str | None = None) -> tuple[Path, list[list[tuple]], int]:
    """A two-stage spec (a ``pretrain:`` section): (output folder, [pretraining runs, fine-tuning runs],
    concurrency), each run ``(cell, seed, config, row fields)``.

    Spec::

        base: finetune.yaml                      # the fine-tuning stage (e.g. NTP only, its own task and lr)
        pretrain: {base: pretrain.yaml, seeds: [1, 2, 3], overrides: {...}}
        seeds: [11, 12, 13]                      # fine-tuning seeds, for every pretrained model
        cells: {ntp: {pretrain.jepa.lbd: 0.0}, llm-jepa: {pretrain.jepa.lbd: 1.0}}   # pretrain.* keys: stage 1

    Each (cell, pretraining seed) is pretrained once, in ``<cell>/pretrain-seed-<p>-<hash>``, and every
    fine-tuning seed starts from it (``model.init_from``), in ``<cell>/pretrain-seed-<p>/seed-<f>-<hash>``.
    Raises ConfigError naming what is missing (``pretrain.base``, ``pretrain.seeds``)."""
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    pre = spec.get("pretrain") or {}
    for key in ("base", "seeds"):
        if not pre.get(key):
            raise ConfigError(f"{spec_path}: pretrain.{key} is missing; a two-stage sweep names its pretraining "
                              "stage's config and seeds")
    out = _output_folder(spec, spec_path, output_dir)
    pre_base = load_run_config(spec_path.parent / pre["base"], pre.get("overrides") or {}).without_variants()
    fine_base = load_run_config(spec_path.parent / spec["base"], spec.get("overrides") or {}).without_variants()
    pretraining, finetuning = [], []
    for pseed in _seeds(pre["seeds"], spec_path, "pretrain.seeds"):
        for cell, overrides in expand_cells(spec).items():
            stage1 = {k.removeprefix("pretrain."): v for k, v in overrides.items() if k.startswith("pretrain.")}
            stage2 = {k: v for k, v in overrides.items() if not k.startswith("pretrain.")}
            first = pre_base.with_overrides({**stage1, "train.seed": pseed, "name": f"{cell}/pretrain-seed-{pseed}"})
            first.output_dir = str((out / cell / f"pretrain-seed-{pseed}-{config_hash(first)}").resolve())
            pretraining.append((cell, pseed, first, {"stage": "pretrain"}))
            for fseed in _seeds(spec.get("seeds"), spec_path, "seeds"):
                second = fine_base.with_overrides({**stage2, "train.seed": fseed, "model.init_from": first.output_dir,
                                                   "name": f"{cell}/pretrain-seed-{pseed}/seed-{fseed}"})
                second.output_dir = str(out / cell / f"pretrain-seed-{pseed}" / f"seed-{fseed}-{config_hash(second)}")
                finetuning.append((cell, fseed, second, {"stage": "finetune", "pretrain_seed": pseed}))
    return out, [pretraining, finetuning], int(spec.get("concurrency", 1))


def plan_phases(spec_path: str | Path, output_dir: str | None = None) -> tuple[Path, list[list[tuple]], int]:
    """(output folder, phases, concurrency) of any spec: ``plan_nested``'s two phases for a two-stage spec,
    else one phase of ``plan``'s runs, each run ``(cell, seed, config, row fields)``."""
    spec = read_spec(spec_path)
    if "pretrain" in spec:
        return plan_nested(spec_path, output_dir)
    out, runs, concurrency = plan(spec_path, output_dir)
    return out, [[(c, s, cfg, {}) for c, s, cfg in runs]], concurrency


def preflight(configs: list) -> None:
    """Check what every run will read before any folder is made: its model (unless it starts from an earlier
    stage's run), its task and its data files (file:line), each distinct data setting once. Raises ConfigError,
    DataError or ModelNotAvailable naming the run."""
    from ..training.run import check_data, model_path

    seen = set()
    for config in configs:
        key = json.dumps([config.task, config.tasks, dataclasses.asdict(config.data), config.eval.skip,
                          config.model.name, config.model.init_from], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            if not config.model.init_from:
                model_path(config)
            check_data(config)
        except LmjepaError as err:
            raise type(err)(f"run {config.name}: {err}") from None


def run_sweep(spec_path: str | Path, concurrency: int | None = None, output_dir: str | None = None,
              launcher: str | None = None, address: str | None = None, cells: list[str] | None = None,
              evaluate_on: list[str] | None = None, geometry_rows: int = 0) -> Path:
    """Run every unfinished (cell, seed) of the spec on ``launcher`` (``local``, ``ray``, ``slurm``; default:
    the spec's, else local); return the results store path. ``cells``: run only these cells now (the
    others stay to do; the store is the same), in the order given — e.g. the cells a first report needs.
    ``evaluate_on`` replaces the spec's list of extra evaluation tasks. ``geometry_rows`` (the audit's):
    each new run's row also carries its model's geometry on that many test rows (``launchers.execute``).
    A two-stage spec (``plan_nested``) runs its pretraining runs first, then the fine-tuning runs of each
    pretrained model that finished; rows carry ``stage`` and ``pretrain_seed``.

    Each finished run adds its row to the store at once; a failed run does not stop the others, and
    when all are done RunFolderError names every failed run and its ``stdout.log``. Raises ConfigError
    for an unknown launcher or cell, a missing extra, or a Ray ``address`` that does not answer.
    """
    spec = read_spec(spec_path)
    out, phases, spec_concurrency = plan_phases(spec_path, output_dir)
    launcher = launcher or spec.get("launcher", "local")
    if launcher not in RUNNERS:
        raise ConfigError(f"launcher {launcher!r} is not one of {list(RUNNERS)}")
    known = sorted({r[0] for r in phases[0]})
    if cells and set(cells) - set(known):
        raise ConfigError(f"{spec_path}: no cell {sorted(set(cells) - set(known))[0]!r}; cells: {known}")
    store = out / "results.jsonl"
    tasks = list(spec.get("evaluate_on") or []) if evaluate_on is None else evaluate_on
    per_seed = len(expand_cells(spec))
    preflight([r[2] for r in phases[0]])
    failures, total = [], 0
    with run_folder.exclusive(out, "sweep store"):  # one sweep writes a store at a time (its runs lock their own)
        for index, runs in enumerate(phases):
            if cells:  # seed-major, then the order given: a stop part-way still leaves complete seed pairs
                chosen = [(i // per_seed, cells.index(r[0]), r) for i, r in enumerate(runs) if r[0] in cells]
                runs = [r for _, _, r in sorted(chosen, key=lambda item: item[:2])]
            last = index == len(phases) - 1  # extra evaluations only for the models a sweep reports on
            failures += _run_phase(spec, out, store, runs, tasks if last else [], launcher,
                                   max(1, concurrency or spec_concurrency), address,
                                   stage=f" (stage {index + 1} of {len(phases)})" if len(phases) > 1 else "",
                                   geometry_rows=geometry_rows if last else 0)
            total += len(runs)
    if failures:
        raise RunFolderError(f"{len(failures)} of {total} runs failed (the others are in {store}): "
                             + "; ".join(failures))
    return store


def _run_phase(spec: dict, out: Path, store: Path, runs: list[tuple], evaluate_on: list[str], launcher: str,
               concurrency: int, address: str | None, stage: str = "", geometry_rows: int = 0) -> list[str]:
    """Run one phase's unfinished runs; return the failures (a run whose ``model.init_from`` run has not
    finished fails without starting)."""
    done = finished(store)
    keyed = [(run, (run[0], run[1], config_hash(run[2]))) for run in runs]
    # unfinished, or finished but not yet evaluated on every evaluate_on task
    todo = [(run, key) for run, key in keyed
            if key not in done or set(evaluate_on) - set(done[key].get("metrics_by_task") or {})]
    blocked = [(run, key) for run, key in todo
               if run[2].model.init_from and not (Path(run[2].model.init_from) / "metrics.json").is_file()]
    failures = [f"{c}/seed-{s}: its pretraining run {cfg.model.init_from} has not finished; not started"
                for (c, s, cfg, _), _ in blocked]
    todo = [item for item in todo if item not in blocked]
    version, sweep_id = code_version(), spec.get("name") or out.name
    jobs = [{"cell": c, "seed": s, "config_yaml": yaml.safe_dump(cfg.to_dict(), sort_keys=False),
             "folder": cfg.output_dir, "evaluate_on": evaluate_on, "geometry_rows": geometry_rows,
             "row": done.get(key) or {"cell": c, "seed": s, **extra, "config_hash": key[2], "config": cfg.to_dict(),
                                      "code_version": version},
             "env": {"LMJEPA_SWEEP": sweep_id, "LMJEPA_CELL": c, "LMJEPA_SEED": str(s)}}
            for (c, s, cfg, extra), key in todo]
    stored = sum("metrics" in job["row"] for job in jobs)  # finished runs that only need evaluations
    waiting = len(runs) - len(todo) - len(blocked)  # finished and evaluated
    print(f"sweep{stage}: {len(runs)} runs, {waiting + stored} already in {store}, {len(todo) - stored} to run and "
          f"{stored} to evaluate on {evaluate_on} on {launcher}, {concurrency} at a time")
    if launcher == "local" and (warning := disk_warning(out, done, len(todo) - stored)):
        print(warning)
    with tqdm(total=len(runs), initial=waiting, desc="sweep", unit="run") as bar:
        def report(cell, seed, row, error):
            if row is not None:
                append_result(store, row)
                bar.set_postfix_str(f"{cell} seed {seed} done")
            else:
                failures.append(error)
            bar.update()

        if jobs:
            RUNNERS[launcher](jobs, report, concurrency=concurrency, resources=spec.get("resources"),
                              address=address or spec.get("address"), folder=out, slurm=spec.get("slurm"))
    return failures


def store_path(spec_path: str | Path, output_dir: str | None = None) -> Path:
    """The spec's results store, ``<output folder>/results.jsonl``, as ``run_sweep`` writes it (``plan_phases``:
    a two-stage spec and ``output_dir`` included). Raises ConfigError as ``plan``."""
    return plan_phases(spec_path, output_dir)[0] / "results.jsonl"
