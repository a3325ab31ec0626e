"""The committed example of a user's own task (``examples/your-data/``, docs/your-data.md) works as its
comments say: the data regenerate from the script, the config and the sweep load, and the sweep, compare and
the predictions file run end to end (with a tiny model built in code in place of SmolLM2)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from datetime import datetime

import yaml
from conftest import ROOT

from lmjepa.analysis.predictions import load_predictions
from lmjepa.cli.main import main
from lmjepa.pipeline.sweep import plan

EXAMPLE = ROOT / "examples" / "your-data"


def test_the_committed_data_are_what_make_data_writes():
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLE / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.rows()
    assert len({r["text"] for r in rows}) == len(rows) == 800
    for name, part in (("train.jsonl", rows[:600]), ("test.jsonl", rows[600:])):
        assert [json.loads(line) for line in (EXAMPLE / name).read_text().splitlines()] == part
    for row in rows:  # the code view is a well-formed expression of numbers, + - * and parentheses
        assert set(row["code"]) <= set("0123456789+-*()") and compile(row["code"], "<code>", "eval")


def test_the_example_sweep_runs_compares_and_checks_its_predictions(tmp_path, tiny_model_dir, capsys):
    folder = tmp_path / "your-data"
    shutil.copytree(EXAMPLE, folder)
    _, runs, _ = plan(folder / "sweep.yaml")
    assert sorted({(cell, config.jepa.lbd) for cell, _, config in runs}) == [("llm-jepa", 1.0), ("ntp", 0.0)]
    assert len(runs) == 10 and runs[0][2].data.data_dir == str(folder)
    claims = load_predictions(folder / "predictions.yaml")
    assert {c.cell for c in claims} | {c.base for c in claims if c.base} <= {cell for cell, _, _ in runs}

    spec = yaml.safe_load((folder / "sweep.yaml").read_text())
    spec.update(seeds=[1, 2], output_dir=str(tmp_path / "sweep"), overrides={
        "model.name": str(tiny_model_dir), "data.max_train_examples": 8, "data.max_eval_examples": 3,
        "train.batch_size": 4, "train.extra": {"disable_tqdm": True}, "eval.max_new_tokens": 4})
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
    assert main(["inspect", str(folder / "config.yaml"), "--rows", "1", "--set", f"model.name={tiny_model_dir}"]) == 0
    assert "trained: '" in capsys.readouterr().out
    assert main(["sweep", str(folder / "sweep.yaml")]) == 0
    store = tmp_path / "sweep" / "results.jsonl"
    assert main(["compare", str(store), "--baseline", "ntp", "--predictions", str(folder / "predictions.yaml")]) == 0
    report = (tmp_path / "sweep" / "compare" / "report.md").read_text()
    assert "## Pre-registered predictions" in report and "| NTP stops by itself on every row |" in report
    assert "`predictions.yaml` is not committed to git, so nothing shows" in report  # a copy outside any repository
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert all(datetime.fromisoformat(r["finished_at"]).tzinfo is not None for r in rows) and len(rows) == 4
