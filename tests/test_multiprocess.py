"""`accelerate launch --multi_gpu --num_processes 2` on a machine without GPUs (torchrun launcher, gloo
backend) gives the same loss curve as one process at the same global batch — the whole distributed path
comes from Accelerate and the Trainer. (`accelerate launch --cpu` always starts ONE process unless MPI is
configured, so it cannot be used for this.)"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "multiprocess_check.py"
pytestmark = pytest.mark.xdist_group("accelerate")  # under `make test`'s workers: one at a time (one rendezvous port)


def _launch_two(*command: str, env: dict) -> None:
    """Run ``command`` under ``accelerate launch`` with 2 processes (torchrun launcher; gloo without GPUs)."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not found")
    subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", *command], check=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("views", ["separate", "shared_prefix"])
def test_two_processes_match_one(tmp_path, data_dir, base_tokenizer_path, views):
    env = {**os.environ, "LMJEPA_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    common = ["--global-batch", "8", "--steps", "4", "--views", views]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(SCRIPT), *common, "--out", str(one)], check=True, env=env, cwd=ROOT)
    _launch_two(str(SCRIPT), *common, "--out", str(two), env=env)
    assert json.loads(two.read_text())["processes"] == 2
    # the same loss curve, value by value: 1 process at batch 8 vs 2 processes at 4 each (relative 1e-4)
    curve_one, curve_two = json.loads(one.read_text())["curve"], json.loads(two.read_text())["curve"]
    assert len(curve_one) == len(curve_two) == 4
    for a, b in zip(curve_one, curve_two):
        assert set(a) == set(b)
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4), (key, a, b)


def test_cli_train_under_accelerate_shards_data_and_writes_once(tmp_path, data_dir, tiny_model_dir):
    config = {
        "name": "ddp", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
        "task": "nlrx-synth", "data": {"data_dir": str(data_dir), "max_train_examples": 16, "max_eval_examples": 4},
        "jepa": {"lbd": 1.0, "predictors": 1, "views": "packed"},
        "train": {"batch_size": 4, "logging_steps": 1, "save_steps": 1, "extra": {"disable_tqdm": True}},
        "eval": {"max_new_tokens": 4, "batch_size": 4},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _launch_two("-m", "lmjepa.cli.main", "train", str(path), env=env)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_steps"] == 2  # 16 examples / (4 per process × 2 processes): the data was sharded
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == 4
    assert not list((tmp_path / "run").glob("checkpoint-*"))
