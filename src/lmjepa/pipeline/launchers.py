"""Where a sweep's runs execute: ``local`` (subprocesses on this machine), ``ray`` (one Ray task per
run, on a running cluster or one started for the sweep) or ``slurm`` (one job per run in a submitit
job array). lmjepa schedules nothing itself: each launcher hands the engine a list of runs and
reports each result back to the sweep, which alone writes the results store (atomically).

Every run is the same function, ``execute``: ``lmjepa train`` in a subprocess on the run's own folder
(so a killed run resumes from its checkpoint), returning its results row. A failed run is reported
with its log path; the others go on. ``ray`` and ``slurm`` are optional extras
(``pip install 'lmjepa[ray]'`` / ``'lmjepa[slurm]'``).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError

LAUNCHERS = ("local", "ray", "slurm")
Report = Callable[[str, int, dict | None, str | None], None]  # (cell, seed, row or None, error or None)


def execute(cell: str, seed: int, config_yaml: str, folder: str, threads: int, row: dict, env: dict | None = None,
            evaluate_on: list[str] | tuple = (), geometry_rows: int = 0) -> dict:
    """Train and evaluate one run (``lmjepa train`` on ``folder/sweep-config.yaml`` in a subprocess, output
    in ``folder/stdout.log``); return ``row`` with its metrics and wall time (``wall_seconds``: this call's
    seconds plus, for a resumed run, the training seconds its checkpoint records, ``TrainingClock``; work
    after that checkpoint was redone and is not counted). A finished run is not
    trained again (``lmjepa train`` returns its stored metrics). Each task of ``evaluate_on`` not yet in
    ``folder/eval/<task>/metrics.json`` is evaluated there (``lmjepa evaluate RUN --task T --out DIR``), and
    the row gets ``metrics_by_task``. With ``geometry_rows``, the audit's geometry of the trained model on
    that many test rows (``lmjepa geometry RUN --rows N``, cached in ``folder/audit_geometry.json``) joins
    the row's metrics, computed where the model is, so the row outlives the model. Raises RuntimeError
    naming the log on failure. Picklable, so Ray and submitit can ship it to another machine."""
    from ..training import run_folder

    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    # a resumed run's wall time includes the earlier processes' training up to the checkpoint it resumes from
    earlier = run_folder.TrainingClock.recorded(run_folder.checkpoint_state(folder_path))
    (folder_path / "sweep-config.yaml").write_text(config_yaml)
    environment = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(folder_path / "stdout.log", "a") as log:
        code = subprocess.run([sys.executable, "-m", "lmjepa.cli.main", "train", str(folder_path / "sweep-config.yaml")],
                              env=environment, stdout=log, stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise RuntimeError(f"run {cell}/seed-{seed} failed (exit {code}); see {folder_path / 'stdout.log'}")
        by_task = {}
        for task in evaluate_on:
            out = folder_path / "eval" / task
            if not (out / "metrics.json").is_file():
                code = subprocess.run([sys.executable, "-m", "lmjepa.cli.main", "evaluate", str(folder_path), "--task",
                                       task, "--out", str(out)], env=environment, stdout=log,
                                      stderr=subprocess.STDOUT).returncode
                if code != 0:
                    raise RuntimeError(f"run {cell}/seed-{seed}: evaluation on {task} failed (exit {code}); "
                                       f"see {folder_path / 'stdout.log'}")
            by_task[task] = _summary(json.loads((out / "metrics.json").read_text()))
        cache = folder_path / "audit_geometry.json"
        if geometry_rows and not (cache.is_file() and json.loads(cache.read_text()).get("rows") == geometry_rows):
            code = subprocess.run([sys.executable, "-m", "lmjepa.cli.main", "geometry", str(folder_path), "--rows",
                                   str(geometry_rows)], env=environment, stdout=log, stderr=subprocess.STDOUT).returncode
            if code != 0:
                raise RuntimeError(f"run {cell}/seed-{seed}: geometry failed (exit {code}); "
                                   f"see {folder_path / 'stdout.log'}")
    metrics = _summary(json.loads((folder_path / "metrics.json").read_text()))
    if geometry_rows:
        metrics.update(json.loads((folder_path / "audit_geometry.json").read_text())["metrics"])
    extra = {"metrics_by_task": by_task} if by_task else {}
    # a row already stored (only new evaluations ran) keeps its training run's wall time and finishing time
    return {**row, "metrics": metrics, **extra,
            "wall_seconds": row.get("wall_seconds", round(earlier + time.perf_counter() - start, 1)),
            "finished_at": row.get("finished_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))}


def _summary(metrics: dict) -> dict:
    metrics.pop("log_history", None)
    return metrics


def run_local(jobs: list[dict], report: Report, concurrency: int = 1, **_) -> None:
    """Each job as a local subprocess, ``concurrency`` at a time; torch threads split between them."""
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    with ThreadPoolExecutor(concurrency) as pool:
        futures = {pool.submit(execute, **{**job, "threads": threads}): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                report(job["cell"], job["seed"], future.result(), None)
            except RuntimeError as err:
                report(job["cell"], job["seed"], None, str(err))


def _needs(extra: str, module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the {extra} launcher needs its extra: pip install 'lmjepa[{extra}]'") from None


def check_address(address: str, timeout_s: float = 30.0) -> None:
    """Raise ConfigError within ``timeout_s`` if nothing answers at a Ray ``host:port`` address."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as err:
        raise ConfigError(f"Ray address {address!r} does not answer ({err}); nothing was started") from None


def run_ray(jobs: list[dict], report: Report, resources: dict | None = None, address: str | None = None, **_) -> None:
    """Each job as a Ray task with ``resources`` (``num_cpus``, ``num_gpus``) on the cluster at ``address``,
    or on a local cluster started for the sweep (and stopped after it)."""
    ray = _needs("ray", "ray")
    resources = resources or {}
    if address:
        check_address(address)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    try:
        cluster = ray.cluster_resources()
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            if resources.get(key, 0) > cluster.get(name, 0):  # Ray would wait for them for ever
                raise ConfigError(f"resources.{key} = {resources[key]} per run, but the Ray cluster has "
                                  f"{cluster.get(name, 0):g} {name}s")
        cpus = resources.get("num_cpus", 1)
        task = ray.remote(execute).options(num_cpus=cpus, num_gpus=resources.get("num_gpus", 0), max_retries=0)
        pending = {task.remote(**{**job, "threads": int(cpus)}): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    report(job["cell"], job["seed"], ray.get(ref), None)
                except ray.exceptions.RayTaskError as err:
                    report(job["cell"], job["seed"], None, str(err.cause if hasattr(err, "cause") else err).splitlines()[-1])
    finally:
        if started:
            ray.shutdown()


def run_slurm(jobs: list[dict], report: Report, resources: dict | None = None, folder: str | Path = ".",
              slurm: dict | None = None, concurrency: int = 1, **_) -> None:
    """The jobs as one submitit job array (one job per run) with ``resources`` and the ``slurm`` options
    (``partition``, ``timeout_min``, …; ``cluster: local`` runs them with submitit's local executor)."""
    submitit = _needs("slurm", "submitit")
    options = dict(slurm or {})
    resources = resources or {}
    executor = submitit.AutoExecutor(folder=str(Path(folder) / "submitit"), cluster=options.pop("cluster", None))
    cpus = int(resources.get("num_cpus", 1))
    params = {"timeout_min": options.pop("timeout_min", 24 * 60), "cpus_per_task": cpus, "name": "lmjepa-sweep"}
    if resources.get("num_gpus"):
        params["gpus_per_node"] = int(resources["num_gpus"])
    if executor.cluster == "slurm":
        params["slurm_array_parallelism"] = concurrency
        params.update({f"slurm_{k}": v for k, v in options.items()})
    executor.update_parameters(**params)
    submitted = executor.map_array(functools.partial(_execute_job, threads=cpus), jobs)
    for handle, job in zip(submitted, jobs):
        try:
            report(job["cell"], job["seed"], handle.result(), None)
        except Exception as err:  # submitit wraps the job's exception (FailedJobError and others)
            last = [line for line in str(err).splitlines() if line.strip()]
            report(job["cell"], job["seed"], None, last[-1] if last else repr(err))


def _execute_job(job: dict, threads: int) -> dict:
    return execute(**{**job, "threads": threads})


RUNNERS = {"local": run_local, "ray": run_ray, "slurm": run_slurm}
