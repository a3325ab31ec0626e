"""Nothing lost (issue 34): a kill inside a checkpoint save never leaves a checkpoint in place; a run SIGKILLed at
random points and resumed records what an uninterrupted run records (train_loss, steps, predictions); a sweep
whose workers (and itself) are killed again and again ends with one row per (cell, seed) and the undisturbed
predictions."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from transformers import Trainer

from lmjepa.pipeline.launchers import execute
from lmjepa.pipeline.run import train_and_evaluate
from lmjepa.training.config import load_run_config
from lmjepa.training.run_folder import TrainingClock, checkpoint_state

from conftest import KillAfterStep, Killed

RECORDED = ("train_loss", "train_steps", "exact_match", "contains_target", "stopped")


def _config(out: Path, tiny_model_dir, data_dir, **train) -> dict:
    return {
        "name": "tiny", "output_dir": str(out), "model": {"name": str(tiny_model_dir)},
        "task": "nlrx-synth", "data": {"data_dir": str(data_dir), "max_train_examples": 24, "max_eval_examples": 4},
        "jepa": {"lbd": 1.0, "predictors": 1},
        "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 4, "save_steps": 2,
                  "extra": {"disable_tqdm": True}, **train},
        "eval": {"max_new_tokens": 6, "batch_size": 4},
    }


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_kill_inside_a_save_leaves_no_checkpoint_in_place_and_the_resumed_row_is_the_uninterrupted_one(
        tmp_path, tiny_model_dir, data_dir, monkeypatch):
    whole = train_and_evaluate(load_run_config(_write(tmp_path / "a.yaml", _config(tmp_path / "whole", tiny_model_dir,
                                                                                    data_dir))))
    out = tmp_path / "killed"
    config = load_run_config(_write(tmp_path / "b.yaml", _config(out, tiny_model_dir, data_dir)))
    original, saves = Trainer._save_rng_state, []

    def dies_in_the_second_save(self, output_dir):  # weights and optimizer written, RNG state and trainer state not
        saves.append(output_dir)
        if len(saves) == 2:
            raise Killed
        original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", dies_in_the_second_save)
    with pytest.raises(Killed):
        train_and_evaluate(config)
    monkeypatch.setattr(Trainer, "_save_rng_state", original)
    assert Path(saves[1]).parent.name == ".staging"  # the Trainer wrote into the staging folder
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]  # checkpoint-4 never in place
    assert (out / ".staging" / "checkpoint-4" / "model.safetensors").is_file()  # the torn save, set apart

    resumed = train_and_evaluate(config)
    assert "resuming from" in (out / "run.log").read_text() and not (out / ".staging").exists()
    assert {k: resumed[k] for k in RECORDED} == pytest.approx({k: whole[k] for k in RECORDED}, rel=1e-6)
    assert (out / "predictions.jsonl").read_text() == (tmp_path / "whole" / "predictions.jsonl").read_text()


def _newest_checkpoint(out: Path) -> int:
    steps = [int(p.name.split("-")[-1]) for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(steps, default=0)


def test_a_run_sigkilled_at_random_points_resumes_to_the_uninterrupted_row(tmp_path, tiny_model_dir, data_dir):
    """``lmjepa train`` in a subprocess, SIGKILLed three times at seeded random moments (a random delay after a
    random checkpoint appears; with a save every step, some land inside a save), then run to the end by
    ``launchers.execute``, whose ``wall_seconds`` must count the training before the checkpoint it resumed
    from (this call's time alone would be too little)."""
    command = [sys.executable, "-m", "lmjepa.cli.main", "train"]
    whole_cfg = _write(tmp_path / "whole.yaml", _config(tmp_path / "whole", tiny_model_dir, data_dir, save_steps=1))
    subprocess.run([*command, str(whole_cfg)], check=True, capture_output=True, timeout=300)
    out = tmp_path / "killed"
    cfg = _write(tmp_path / "killed.yaml", _config(out, tiny_model_dir, data_dir, save_steps=1))
    rng, killed_after = random.Random(34), []
    for step in sorted(rng.sample(range(1, 6), 3)):  # 6 optimizer steps in all
        process = subprocess.Popen([*command, str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while _newest_checkpoint(out) < step and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        assert process.poll() is None, "the run ended before its kill"
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_after.append(_newest_checkpoint(out))
    # the last piece as a sweep runs it: its row's wall_seconds adds the training its checkpoint records
    before = TrainingClock.recorded(checkpoint_state(out))
    started = time.perf_counter()
    row = execute("llm-jepa", 1, cfg.read_text(), str(out), threads=1, row={"cell": "llm-jepa", "seed": 1})
    assert before > 0 and row["wall_seconds"] == pytest.approx(before + time.perf_counter() - started, abs=0.5)
    assert len(killed_after) == 3 and killed_after[-1] < 6
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    resumed = json.loads((out / "metrics.json").read_text())
    assert {k: resumed[k] for k in RECORDED} == pytest.approx({k: whole[k] for k in RECORDED}, rel=1e-6)
    assert (out / "predictions.jsonl").read_text() == (tmp_path / "whole" / "predictions.jsonl").read_text()


def _sweep_spec(tmp_path: Path, tiny_model_dir, data_dir, name: str) -> Path:
    base = _config(tmp_path / "unused", tiny_model_dir, data_dir, save_steps=1)
    base["data"]["max_train_examples"] = 16
    _write(tmp_path / "base.yaml", base)
    spec = {"base": "base.yaml", "output_dir": str(tmp_path / name), "seeds": [1, 2], "concurrency": 2,
            "cells": {"ntp": {"jepa.lbd": 0.0}, "llm-jepa": {"jepa.lbd": 1.0}}}
    return _write(tmp_path / f"{name}.yaml", spec)


def _predictions(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.glob("*/seed-*/predictions.jsonl"))}


def test_soak_a_sweep_with_two_workers_under_repeated_kills_ends_with_one_row_per_run(tmp_path, tiny_model_dir,
                                                                                     data_dir):
    """Two workers (concurrency 2); a killer SIGKILLs one worker's ``lmjepa train`` (and, every third time, the
    sweep itself) at random moments; the sweep is restarted until it exits 0."""
    command = [sys.executable, "-m", "lmjepa.cli.main", "sweep"]
    subprocess.run([*command, str(_sweep_spec(tmp_path, tiny_model_dir, data_dir, "calm"))], check=True,
                   capture_output=True, timeout=600)
    spec = _sweep_spec(tmp_path, tiny_model_dir, data_dir, "soak")
    rng, kills = random.Random(7), 0
    for _ in range(30):
        # its own session: killing the sweep kills its process group, workers included (a machine taken away)
        sweep = subprocess.Popen([*command, str(spec)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        while sweep.poll() is None:
            time.sleep(rng.uniform(1.0, 4.0))
            if kills >= 5 or sweep.poll() is not None:
                continue
            workers = []
            for child in psutil.Process(sweep.pid).children(recursive=True):
                try:
                    workers += [child] if "train" in child.cmdline() else []
                except psutil.Error:
                    pass
            if not workers:
                continue
            kills += 1
            try:
                if kills % 3 == 0:
                    os.killpg(sweep.pid, signal.SIGKILL)
                else:
                    rng.choice(workers).kill()
            except (psutil.Error, ProcessLookupError):
                pass
        if sweep.wait() == 0:
            break
    assert kills >= 3, "the killer never found a worker"
    rows = [json.loads(line) for line in (tmp_path / "soak" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["cell"], r["seed"]) for r in rows) == [("llm-jepa", 1), ("llm-jepa", 2), ("ntp", 1), ("ntp", 2)]
    assert _predictions(tmp_path / "soak") == _predictions(tmp_path / "calm") and len(_predictions(tmp_path / "calm")) == 4


@pytest.mark.parametrize("fault, named", [
    (OSError(28, "No space left on device", "/runs/x/metrics.json.tmp"), "/runs/x/metrics.json.tmp: no space left"),
    (OSError(30, "Read-only file system", "/runs/x/run.log"), "/runs/x/run.log: read-only filesystem"),
    (RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4310"), "is the disk full?"),
])
def test_a_fault_of_the_machine_is_one_line_and_the_rerun_resumes(tmp_path, tiny_model_dir, data_dir, capsys,
                                                                   monkeypatch, fault, named):
    """A write that fails mid-run (here: the second checkpoint's RNG state, as a full disk would) is one line, rc 2,
    no traceback; no incomplete checkpoint is in place, and the same command, run again, resumes and finishes."""
    from lmjepa.cli.main import main

    cfg = _write(tmp_path / "c.yaml", _config(tmp_path / "run", tiny_model_dir, data_dir))
    original, saves = Trainer._save_rng_state, []

    def fails(self, output_dir):
        saves.append(output_dir)
        if len(saves) == 2:
            raise fault
        original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", fails)
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lmjepa")]
    assert "Traceback" not in err and len(lines) == 1 and named in lines[0], err[-1500:]
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2"]
    monkeypatch.setattr(Trainer, "_save_rng_state", original)
    assert main(["train", str(cfg)]) == 0
    assert "resuming from" in (tmp_path / "run" / "run.log").read_text()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_steps"] == 6


def test_a_resumed_pretraining_records_the_uninterrupted_train_loss(tmp_path):
    """The P&R trainer shares the checkpoint mixin: its row's train_loss covers every step of a resumed run."""
    import torch
    from torch import nn
    from transformers import TrainingArguments

    from lmjepa.training.pretrain import PretrainTrainer

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.w = nn.Linear(4, 1)

        def forward(self, x, y, progress=None):
            loss = ((self.w(x).squeeze(-1) - y) ** 2).mean()
            return {"loss": loss, "mlm_loss": loss.detach(), "jepa_loss": None, "lambda": None}

    rows = [{"x": torch.randn(4), "y": torch.randn(())} for _ in range(12)]
    collate = lambda b: {"x": torch.stack([r["x"] for r in b]), "y": torch.stack([r["y"] for r in b])}  # noqa: E731

    def trainer(out, callbacks=()):
        args = TrainingArguments(str(out), per_device_train_batch_size=2, max_steps=6, save_steps=2, logging_steps=3,
                                 report_to=[], use_cpu=True, disable_tqdm=True, data_seed=0, seed=0)
        return PretrainTrainer(model=Tiny(), args=args, train_dataset=rows, data_collator=collate,
                               callbacks=list(callbacks))

    whole = trainer(tmp_path / "whole")
    whole.train()

    with pytest.raises(Killed):
        trainer(tmp_path / "killed", [KillAfterStep(5)]).train()
    resumed = trainer(tmp_path / "killed")
    result = resumed.train(resume_from_checkpoint=str(tmp_path / "killed" / "checkpoint-4"))
    assert resumed.training_loss() == pytest.approx(whole.training_loss(), rel=1e-6)
    assert abs(result.training_loss - whole.training_loss()) > 1e-6  # the Trainer's own: the last piece only
