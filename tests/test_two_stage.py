"""Two-stage protocol (issue 16): model.init_from, nested seeds in sweep, and the nested analysis in compare."""

import json

import numpy as np
import pytest
import yaml
from scipy import stats

from lmjepa.cli.main import main
from lmjepa.data.jsonl import DataError
from lmjepa.stats.compare import compare, load_results

# cell -> pretraining seed -> fine-tuning seed -> exact match
TABLE = {"ntp": {1: {10: 40.0, 11: 44.0}, 2: {10: 50.0, 11: 48.0}, 3: {10: 45.0, 11: 41.0}},
         "jepa": {1: {10: 46.0, 11: 48.0}, 2: {10: 51.0, 11: 55.0}, 3: {10: 44.0, 11: 50.0}}}


def _rows(table=TABLE):
    return [{"cell": c, "seed": f, "pretrain_seed": p, "stage": "finetune", "metrics": {"exact_match": v}}
            for c, by_p in table.items() for p, by_f in by_p.items() for f, v in by_f.items()] + \
        [{"cell": "ntp", "seed": 1, "stage": "pretrain", "metrics": {"exact_match": None}}]  # never analysed


def test_nested_analysis_by_hand():
    result = compare(_rows(), "ntp", ["exact_match"])
    (test,) = result["tests"]
    base = [np.mean([40, 44]), np.mean([50, 48]), np.mean([45, 41])]  # 42, 49, 43
    cell = [np.mean([46, 48]), np.mean([51, 55]), np.mean([44, 50])]  # 47, 53, 47
    assert test["n"] == 3 and test["delta"] == pytest.approx(np.mean(np.subtract(cell, base)))
    assert test["p_t_two_sided"] == pytest.approx(stats.ttest_rel(cell, base).pvalue)
    within = np.mean([np.var([46, 48], ddof=1), np.var([51, 55], ddof=1), np.var([44, 50], ddof=1)])
    nested = result["nested"]["jepa · exact_match"]
    assert nested["finetune_sd"] == pytest.approx(np.sqrt(within))
    assert nested["pretrain_sd"] == pytest.approx(np.std(cell, ddof=1))
    assert nested["pretrain_seeds"] == 3 and nested["finetune_seeds"] == 2


def test_an_unbalanced_nested_design_is_named():
    table = json.loads(json.dumps(TABLE), object_hook=lambda d: {int(k) if k.isdigit() else k: v for k, v in d.items()})
    del table["jepa"][2][11]
    with pytest.raises(DataError, match=r"cell 'jepa' pretraining seed 2: fine-tuning seeds \[10\], others have \[10, 11\]"):
        compare(_rows(table), "ntp", ["exact_match"])


def _configs(tmp_path, tiny_model_dir, data_dir):
    common = {"model": {"name": str(tiny_model_dir)}, "task": "nlrx-synth",
              "data": {"data_dir": str(data_dir), "max_train_examples": 4, "max_eval_examples": 2},
              "jepa": {"predictors": 1}, "eval": {"max_new_tokens": 2, "batch_size": 2},
              "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 100,
                        "extra": {"disable_tqdm": True}}}
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump({**common, "name": "pre", "output_dir": "unused",
                                                            "eval": {"skip": True}}))
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump({**common, "name": "ft", "output_dir": "unused",
                                                            "jepa": {"predictors": 1, "lbd": 0.0}}))
    spec = {"base": "finetune.yaml", "output_dir": str(tmp_path / "nested"), "seeds": [10, 11], "concurrency": 2,
            "pretrain": {"base": "pretrain.yaml", "seeds": [1, 2]},
            "cells": {"ntp": {"pretrain.jepa.lbd": 0.0}, "llm-jepa": {"pretrain.jepa.lbd": 1.0}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path / "spec.yaml"


def test_fine_tuning_refuses_an_unfinished_pretraining_run(tmp_path, tiny_model_dir, data_dir, capsys):
    _configs(tmp_path, tiny_model_dir, data_dir)
    config = yaml.safe_load((tmp_path / "finetune.yaml").read_text())
    config["model"]["init_from"] = str(tmp_path / "no-such-run")
    config["output_dir"] = str(tmp_path / "ft")
    (tmp_path / "ft.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "ft.yaml")]) == 2
    assert "has not finished" in capsys.readouterr().err and not (tmp_path / "ft" / "model").exists()


def test_nested_sweep_pretrains_once_and_reuses_each_model(tmp_path, tiny_model_dir, data_dir, capsys):
    spec = _configs(tmp_path, tiny_model_dir, data_dir)
    assert main(["sweep", str(spec)]) == 0
    rows = load_results(tmp_path / "nested" / "results.jsonl")
    pre = [r for r in rows if r["stage"] == "pretrain"]
    fine = [r for r in rows if r["stage"] == "finetune"]
    assert len(pre) == 4 and len(fine) == 8
    for row in fine:  # each fine-tune starts from its own cell's pretrained model of its pretraining seed
        origin = [p for p in pre if p["config"]["output_dir"] == row["config"]["model"]["init_from"]]
        assert len(origin) == 1 and (origin[0]["cell"], origin[0]["seed"]) == (row["cell"], row["pretrain_seed"])
    assert {r["config"]["jepa"]["lbd"] for r in fine} == {0.0}  # the fine-tune stage is NTP only
    assert {(r["cell"], r["config"]["jepa"]["lbd"]) for r in pre} == {("ntp", 0.0), ("llm-jepa", 1.0)}
    capsys.readouterr()
    assert main(["sweep", str(spec)]) == 0  # nothing is trained again
    assert "0 to run" in capsys.readouterr().out
    from lmjepa.pipeline.sweep_status import sweep_status

    status = sweep_status(spec)  # each stage's rows count for that stage only
    assert {c: len(e["done"]) for c, e in status["cells"].items()} == {
        "ntp (pretrain)": 2, "llm-jepa (pretrain)": 2, "ntp (finetune)": 4, "llm-jepa (finetune)": 4}
    assert status["runs_left"] == 0 and status["seconds_left"] == 0.0
    assert main(["compare", str(tmp_path / "nested" / "results.jsonl"), "--baseline", "ntp",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert "Nested design: 2 pretraining seeds × 2 fine-tuning seeds" in (tmp_path / "cmp" / "report.md").read_text()
    spec_values = yaml.safe_load(spec.read_text())
    del spec_values["pretrain"]["seeds"]
    spec.write_text(yaml.safe_dump(spec_values))
    assert main(["sweep", str(spec)]) == 2 and "pretrain.seeds is missing" in capsys.readouterr().err


def test_the_pretraining_presets_are_valid():
    from pathlib import Path

    from lmjepa.evaluation.tasks import check_config
    from lmjepa.pipeline.sweep import plan, plan_nested

    root = Path(__file__).resolve().parents[1] / "configs" / "llm-jepa-pretrain"
    _, runs, _ = plan(root / "sweep-scratch-nlrx.yaml")
    assert len(runs) == 10 and all(c.model.from_scratch and c.model.config_overrides["num_hidden_layers"] == 4
                                   for _, _, c in runs)
    assert check_config(runs[0][2]).metric == "prefix"
    _, (pre, fine), _ = plan_nested(root / "sweep-paraphrase.yaml")
    assert len(pre) == 2 * 3 and len(fine) == 2 * 3 * 3
    assert {c.jepa.views for _, _, c, _ in pre} == {"multiview"} and all(c.eval.skip for _, _, c, _ in pre)
    assert {(c.task, c.jepa.lbd) for _, _, c, _ in fine} == {("rotten-tomatoes", 0.0)}
