"""lmjepa sweep --status: what is finished, in flight and left, with the time left estimated from the store's
own rows; nothing is run, locked or renamed."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from lmjepa.cli.main import main
from lmjepa.pipeline.sweep import config_hash, plan
from lmjepa.pipeline.sweep_status import checkpoint_progress, render_status, sweep_status
from test_sweep import _spec


def _row(cell, seed, config, wall, train=None):
    metrics = {"exact_match": 50.0, **({"train_seconds": train} if train is not None else {})}
    return {"cell": cell, "seed": seed, "config_hash": config_hash(config), "metrics": metrics, "wall_seconds": wall}


def test_status_counts_runs_and_estimates_the_time_left_from_the_rows(tmp_path, tiny_model_dir, data_dir, capsys):
    spec = _spec(tmp_path, tiny_model_dir, data_dir)  # cells ntp, llm-jepa × seeds 1, 2; concurrency 2
    out, runs, _ = plan(spec)
    by = {(c, s): cfg for c, s, cfg in runs}
    out.mkdir(parents=True)
    rows = [_row("ntp", 1, by["ntp", 1], 100.0, 60.0), _row("ntp", 2, by["ntp", 2], 140.0, 80.0),
            _row("llm-jepa", 1, by["llm-jepa", 1], 300.0)]  # llm-jepa's row has no train_seconds
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # llm-jepa seed 2 is in flight: a readable checkpoint at step 25 of 100, and a torn newer one
    folder = Path(by["llm-jepa", 2].output_dir)
    (folder / "checkpoint-25").mkdir(parents=True)
    (folder / "checkpoint-25" / "trainer_state.json").write_text(json.dumps({"global_step": 25, "max_steps": 100}))
    (folder / "checkpoint-50").mkdir()  # killed while saving: no trainer_state.json
    assert checkpoint_progress(folder) == (25, 100)
    status = sweep_status(spec)
    ntp, jepa = status["cells"]["ntp"], status["cells"]["llm-jepa"]
    assert (ntp["done"], ntp["to_run"], ntp["in_flight"]) == ([1, 2], [], [])
    assert (jepa["done"], jepa["to_run"], jepa["in_flight"]) == ([1], [], [(2, 25, 100)])
    assert ntp["median_wall"] == statistics.median([100.0, 140.0]) and ntp["seconds_left"] == 0.0
    assert jepa["seconds_left"] == pytest.approx(300.0 - 300.0 * 25 / 100)  # no train_seconds: the wall time
    assert status["seconds_left"] == pytest.approx(225.0 / 2) and status["runs_left"] == 1  # concurrency 2
    assert sweep_status(spec, concurrency=1)["seconds_left"] == pytest.approx(225.0)
    assert (folder / "checkpoint-50").is_dir()  # read-only: the torn checkpoint is not renamed
    text = render_status(status)
    assert "| llm-jepa | 1 | seed 2: 25/100 | 0 | 5 min | 4 min | 1 run of the cell |" in text
    assert text.endswith("1 run left: about 2 min at concurrency 2 (medians of the finished runs' `wall_seconds` "
                         "on the machine that made them).")

    # A cell with no finished run borrows the nearest cell's median, and says so; nothing is written by --status.
    (out / "results.jsonl").write_text(json.dumps(rows[0]) + "\n")
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["sweep", spec, "--status"]) == 0
    printed = capsys.readouterr().out
    assert ("| llm-jepa | 0 | seed 2: 25/100 | 1 | 2 min | 3 min | 1 run of `ntp` (nearest config: 1 setting "
            "differs) |") in printed
    # ntp seed 2 to run: 100 s; llm-jepa: 100 s to run + (100 − 60 × 25/100) s in flight; 285 s over concurrency 2
    assert "3 runs left: about 2 min at concurrency 2" in printed
    assert sweep_status(spec)["seconds_left"] == pytest.approx((100 + 100 + 100 - 60 * 25 / 100) / 2)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert main(["sweep", spec, "--status", "--restore", str(out / "results.jsonl")]) == 2
    assert "--status only reads the store" in capsys.readouterr().err

    # training done (model/ saved), evaluation under way: two generation batches finished
    (folder / "model").mkdir()
    assert sweep_status(spec)["cells"]["llm-jepa"]["evaluating"] == {2: 0}
    (folder / "generations.partial.jsonl").write_text('{"key": 1}\n{"key": 2}\n')
    assert "| llm-jepa | 0 | seed 2: 25/100, evaluating (2 batches generated) | 1 |" in render_status(sweep_status(spec))


def test_a_cell_without_finished_runs_borrows_from_the_cells_nearest_in_config(tmp_path, tiny_model_dir, data_dir):
    import yaml

    spec = _spec(tmp_path, tiny_model_dir, data_dir)
    values = yaml.safe_load(Path(spec).read_text())
    values["cells"].update({"llm-jepa-lr": {"jepa.lbd": 1.0, "train.learning_rate": 2e-3},
                            "ntp-lr": {"jepa.lbd": 0.0, "train.learning_rate": 2e-3}})
    Path(spec).write_text(yaml.safe_dump(values, sort_keys=False))
    out, runs, _ = plan(spec)
    by = {(c, s): cfg for c, s, cfg in runs}
    out.mkdir(parents=True)
    rows = [_row("ntp", 1, by["ntp", 1], 100.0), _row("ntp", 2, by["ntp", 2], 120.0),
            _row("llm-jepa", 1, by["llm-jepa", 1], 300.0)]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cells = sweep_status(spec, concurrency=1)["cells"]
    # llm-jepa-lr differs from llm-jepa in the learning rate only, from ntp in λ too: llm-jepa's 300 s
    assert cells["llm-jepa-lr"]["median_wall"] == 300.0 and cells["llm-jepa-lr"]["seconds_left"] == 600.0
    assert cells["llm-jepa-lr"]["estimated_from"] == "1 run of `llm-jepa` (nearest config: 1 setting differs)"
    assert cells["ntp-lr"]["median_wall"] == statistics.median([100.0, 120.0])
    # llm-jepa, with no run now, ties: one setting from ntp (λ) and one from llm-jepa-lr (the learning rate)
    rows.append(_row("llm-jepa-lr", 1, by["llm-jepa-lr", 1], 500.0))
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[1], rows[3]]))
    jepa = sweep_status(spec)["cells"]["llm-jepa"]
    assert jepa["median_wall"] == statistics.median([100.0, 120.0, 500.0])
    assert jepa["estimated_from"] == "3 runs of `ntp`, `llm-jepa-lr` (nearest config: 1 setting differs)"


def test_nearest_counts_differing_settings():
    from lmjepa.pipeline.sweep_status import nearest, settings

    own = {"jepa.lbd": 1.0, "train.learning_rate": 1e-3, "data.train_eos": True}
    others = {"a": {"jepa.lbd": 0.0, "train.learning_rate": 1e-3, "data.train_eos": True},        # 1
              "b": {"jepa.lbd": 0.0, "train.learning_rate": 2e-3, "data.train_eos": True},        # 2
              "c": {"jepa.lbd": 1.0, "train.learning_rate": 1e-3}}                               # 1: a key lacking
    assert nearest(own, others) == (["a", "c"], 1)
    with pytest.raises(ValueError):
        nearest(own, {})

    class Config:  # seed, name and folders are no setting
        def to_dict(self):
            return {"name": "x/seed-1", "output_dir": "/tmp/x", "variants": {"v": {"jepa.lbd": 2}},
                    "train": {"seed": 1, "learning_rate": 1e-3, "extra": {}}, "data": {"data_dir": "/d", "task": "t"}}

    assert settings(Config()) == {"train.learning_rate": 1e-3, "train.extra": {}, "data.task": "t"}


def test_no_finished_run_means_no_estimate(tmp_path, tiny_model_dir, data_dir):
    status = sweep_status(_spec(tmp_path, tiny_model_dir, data_dir))
    assert status["runs_left"] == 4 and status["seconds_left"] is None
    assert render_status(status).endswith("4 runs left; no estimate of the time yet: a cell with runs left has no "
                                           "finished run to measure it by (finish one run first).")


def test_a_two_stage_spec_is_listed_per_stage(tmp_path, tiny_model_dir, data_dir):
    from test_two_stage import _configs

    status = sweep_status(_configs(tmp_path, tiny_model_dir, data_dir))  # 2 cells × 2 pretraining × 2 fine-tuning seeds
    assert {cell: len(e["to_run"]) for cell, e in status["cells"].items()} == {
        "ntp (pretrain)": 2, "llm-jepa (pretrain)": 2, "ntp (finetune)": 4, "llm-jepa (finetune)": 4}
    assert status["runs_left"] == 12 and status["seconds_left"] is None
