"""Sweeps on an existing engine: a local Ray cluster and submitit's local executor give the same results as
the local launcher, resume without recomputing, report failed runs without stopping the others."""

from __future__ import annotations

import json
import sys
import time

import pytest
import yaml

from lmjepa.cli.main import main
from lmjepa.errors import ConfigError, RunFolderError
from lmjepa.pipeline.launchers import check_address
from lmjepa.pipeline.sweep import run_sweep

TIMES = ("train_seconds", "train_cpu_seconds", "eval_seconds", "generate_seconds")


def _spec(tmp_path, tiny_model_dir, data_dir, **extra) -> str:
    base = {"name": "tiny", "output_dir": "unused", "model": {"name": str(tiny_model_dir)}, "task": "nlrx-synth",
            "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 3},
            "jepa": {"predictors": 1},
            "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 100,
                      "extra": {"disable_tqdm": True}},
            "eval": {"max_new_tokens": 4, "batch_size": 4}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"base": "base.yaml", "output_dir": str(tmp_path / "sweep"), "seeds": [1], "concurrency": 2,
            "resources": {"num_cpus": 1}, "cells": {"ntp": {"jepa.lbd": 0.0}, "llm-jepa": {"jepa.lbd": 1.0}}, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def _results(store) -> dict:
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    return {(r["cell"], r["seed"]): {k: v for k, v in r["metrics"].items() if k not in TIMES} for r in rows}


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, tiny_model_dir, data_dir):
    folder = tmp_path_factory.mktemp("local")
    return _results(run_sweep(_spec(folder, tiny_model_dir, data_dir), launcher="local"))


def test_ray_gives_the_local_results_and_resumes(tmp_path, tiny_model_dir, data_dir, local_results):
    pytest.importorskip("ray")
    spec = _spec(tmp_path, tiny_model_dir, data_dir)
    store = run_sweep(spec, launcher="ray")  # a local Ray cluster, started and stopped for the sweep
    assert _results(store) == local_results
    # killed mid-way: one run's row and results are gone; only that run executes again
    rows = store.read_text().splitlines()
    lost = json.loads(rows[0])
    store.write_text(rows[1] + "\n")
    folders = {json.loads(r)["cell"]: next((tmp_path / "sweep" / json.loads(r)["cell"]).glob("seed-*")) for r in rows}
    (folders[lost["cell"]] / "metrics.json").unlink()
    kept = next(c for c in folders if c != lost["cell"])
    mtime = (folders[kept] / "metrics.json").stat().st_mtime
    assert _results(run_sweep(spec, launcher="ray")) == local_results
    assert (folders[kept] / "metrics.json").stat().st_mtime == mtime
    too_big = _spec(tmp_path / "gpu", tiny_model_dir, data_dir, resources={"num_gpus": 8})
    with pytest.raises(ConfigError, match=r"resources.num_gpus = 8 per run, but the Ray cluster has 0 GPUs"):
        run_sweep(too_big, launcher="ray")  # refused at once, not left waiting for GPUs


def test_slurm_through_submitit_local_executor(tmp_path, tiny_model_dir, data_dir, local_results):
    pytest.importorskip("submitit")
    spec = _spec(tmp_path, tiny_model_dir, data_dir, slurm={"cluster": "local", "timeout_min": 10})
    assert _results(run_sweep(spec, launcher="slurm")) == local_results


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, tiny_model_dir, data_dir):
    spec = _spec(tmp_path, tiny_model_dir, data_dir)
    values = yaml.safe_load(open(spec))
    values["cells"]["broken"] = {"data.max_length": 1}  # nothing left to train: the run fails
    open(spec, "w").write(yaml.safe_dump(values))
    with pytest.raises(RunFolderError, match=r"1 of 3 runs failed .*broken/seed-1 failed \(exit 2\); see .*stdout.log"):
        run_sweep(spec, launcher="local")
    assert len((tmp_path / "sweep" / "results.jsonl").read_text().splitlines()) == 2


def test_missing_extras_and_a_silent_address_are_one_line_errors(tmp_path, tiny_model_dir, data_dir, monkeypatch,
                                                                capsys):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="does not answer"):
        check_address("127.0.0.1:9", timeout_s=5)
    assert time.perf_counter() - start < 30
    for module in ("ray", "submitit"):  # as if the extras were not installed
        monkeypatch.setitem(sys.modules, module, None)
    spec = _spec(tmp_path, tiny_model_dir, data_dir)
    for launcher, extra in (("ray", "lmjepa[ray]"), ("slurm", "lmjepa[slurm]")):
        assert main(["sweep", spec, "--launcher", launcher]) == 2
        assert f"pip install '{extra}'" in capsys.readouterr().err
