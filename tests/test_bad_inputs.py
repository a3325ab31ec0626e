"""Bad input is one line on stderr with rc 2, before any model loads, and nothing is created on disk (issue 34).

Each case writes a config (or spec, or data file) into a fresh folder, runs the CLI in this process, and checks:
rc 2, exactly one ``lmjepa: error:`` line naming the key or file, no traceback, no run folder, < 10 s. Training is
replaced by a sentinel, so a case that slipped through every check fails loudly instead of training.
"""

from __future__ import annotations

import time

import pytest
import yaml

from conftest import ROOT
from lmjepa.cli.main import main
from lmjepa.pipeline import run as evaluation_run

BASE = ROOT / "configs" / "nlrx-synth-smollm2.yaml"


def run_config(**sections) -> dict:
    """A valid tiny run config (the model and data folder are filled in by the test); ``sections`` replace or
    extend it: ``train={"batch_size": 0}``, or ``drop="jepa"``."""
    config = {"name": "bad", "output_dir": "OUT", "task": "nlrx-synth", "model": {"name": "MODEL"},
              "data": {"data_dir": "DATA", "max_train_examples": 8, "max_eval_examples": 4},
              "jepa": {"lbd": 1.0, "predictors": 1}, "train": {"batch_size": 4, "learning_rate": 1e-4},
              "eval": {"max_new_tokens": 8}}
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) and isinstance(
            config.get(section), dict) else values
    return config


def sweep_spec(**keys) -> dict:
    return {"base": "base.yaml", "output_dir": "OUT", "seeds": [1, 2], "cells": {"ntp": {"jepa.lbd": 0.0}}, **keys}


# (id, command, what the file holds: text | run-config dict | spec dict, expected fragment of the one line)
CASES = [
    # --- the file itself
    ("empty file", "train", "", "expects a mapping"),
    ("a list, not a mapping", "train", "- a\n- b\n", "expects a mapping"),
    ("invalid YAML", "train", "name: [a\n", "not valid YAML"),
    ("duplicate key", "train", "name: a\nname: b\n", "duplicate key 'name'"),
    ("no such preset", "train", None, "did you mean 'nlrx-synth-smollm2'"),
    # --- keys and types
    ("unknown top-level key", "train", run_config(lbd=1.0), "unknown config key 'lbd'"),
    ("unknown key, closest named", "train", run_config(jepa={"lbdd": 1}), "did you mean 'lbd'"),
    ("section not a mapping", "train", run_config(model="smollm2"), "'model' expects a mapping"),
    ("int as a string", "train", run_config(train={"batch_size": "8"}), "'train.batch_size' expects an integer"),
    ("int as a float", "train", run_config(train={"batch_size": 8.5}), "'train.batch_size' expects an integer"),
    ("int as a list", "train", run_config(train={"batch_size": [8]}), "'train.batch_size' expects an integer"),
    ("seed as a string", "train", run_config(train={"seed": "82"}), "'train.seed' expects an integer"),
    ("k as a float", "train", run_config(jepa={"predictors": 1.5}), "'jepa.predictors' expects an integer"),
    ("number that is a word", "train", run_config(train={"learning_rate": "fast"}), "'train.learning_rate' expects a number"),
    ("bool as a string", "train", run_config(train={"gradient_checkpointing": "yes"}), "expects true or false"),
    ("lora not a mapping", "train", run_config(model={"lora": "yes"}), "'model.lora' expects a mapping or null"),
    ("report_to not a list", "train", run_config(train={"report_to": "tensorboard"}), "'train.report_to' expects a list"),
    # --- ranges
    ("batch size 0", "train", run_config(train={"batch_size": 0}), "'train.batch_size' must be ≥ 1"),
    ("lr 0", "train", run_config(train={"learning_rate": 0}), "'train.learning_rate' must be > 0"),
    ("lr negative", "train", run_config(train={"learning_rate": -1e-4}), "'train.learning_rate' must be > 0"),
    ("epochs -1", "train", run_config(train={"num_train_epochs": -1}), "'train.num_train_epochs' must be > 0"),
    ("max_steps 0", "train", run_config(train={"max_steps": 0}), "'train.max_steps' must be ≥ 1, or -1"),
    ("GA 0", "train", run_config(train={"gradient_accumulation_steps": 0}), "'train.gradient_accumulation_steps' must be ≥ 1"),
    ("warm-up ratio 1.5", "train", run_config(train={"warmup_ratio": 1.5}), "'train.warmup_ratio' must be in [0, 1)"),
    ("logging steps 0", "train", run_config(train={"logging_steps": 0}), "'train.logging_steps' must be ≥ 1"),
    ("save steps 0", "train", run_config(train={"save_steps": 0}), "'train.save_steps' must be ≥ 1"),
    ("negative seed", "train", run_config(train={"seed": -3}), "'train.seed' must be ≥ 0"),
    ("loss dropout 1", "train", run_config(jepa={"dropout": 1.0}), "'jepa.dropout' must be in [0, 1)"),
    ("λ negative", "train", run_config(jepa={"lbd": -1}), "'jepa.lbd' must be ≥ 0"),
    ("k negative", "train", run_config(jepa={"predictors": -1}), "'jepa.predictors' must be ≥ 0"),
    ("temperature 0", "train", run_config(jepa={"temperature": 0}), "'jepa.temperature' must be > 0"),
    ("max_length 0", "train", run_config(data={"max_length": 0}), "'data.max_length' must be ≥ 1"),
    ("train rows 0", "train", run_config(data={"max_train_examples": 0}), "'data.max_train_examples' must be ≥ 1"),
    ("eval rows -5", "train", run_config(data={"max_eval_examples": -5}), "'data.max_eval_examples' must be ≥ 1"),
    ("max_new_tokens -1", "train", run_config(eval={"max_new_tokens": -1}), "'eval.max_new_tokens' must be ≥ 1"),
    ("eval batch 0", "train", run_config(eval={"batch_size": 0}), "'eval.batch_size' must be ≥ 1"),
    # --- choices and combinations
    ("precision fp64", "train", run_config(train={"precision": "fp64"}), "'train.precision': 'fp64' is not one of"),
    ("views sideways", "train", run_config(jepa={"views": "sideways"}), "'jepa.views': 'sideways' is not one of"),
    ("distance manhattan", "train", run_config(jepa={"distance": "manhattan"}), "'jepa.distance': 'manhattan'"),
    ("tracker unknown", "train", run_config(train={"report_to": ["nope"]}), "'train.report_to': 'nope' is not one of"),
    ("eval backend tpu", "train", run_config(eval={"backend": "tpu"}), "'eval.backend': 'tpu' is not one of"),
    ("official scaling at GA 1", "train", run_config(jepa={"accumulation_scaling": "official"}), "cannot act"),
    ("unknown task", "train", run_config(task="nlrx-synht"), "nlrx-synht"),
    ("unknown objective", "train", run_config(objectives=[{"name": "nope"}]), "nope"),
    ("objective parameter of a wrong type", "train", run_config(objectives=[{"name": "sigreg", "num_slices": "many"}]),
     "num_slices"),
    ("λ set twice", "train", run_config(jepa={"lbd": 0.5}, objectives=[{"name": "llm-jepa", "weight": 1.0}]), "jepa.lbd"),
    ("variant with an unknown key", "train", run_config(variants={"a": {"jepa.lbdd": 1}}), "variant 'a'"),
    ("model not available", "train", run_config(model={"name": "no-such-model"}), "no-such-model"),
    # --- files and folders
    ("train file missing", "train", run_config(data={"train_file": "missing.jsonl"}), "missing.jsonl"),
    ("train file not JSON at line 2", "train", run_config(data={"train_file": "BROKEN"}), "broken.jsonl:2"),
    ("train file without its fields", "train", run_config(data={"train_file": "FIELDLESS"}), "fieldless.jsonl:1"),
    ("train file not UTF-8", "train", run_config(data={"train_file": "LATIN1"}), "latin1.jsonl"),
    ("output_dir is a file", "train", run_config(output_dir="A_FILE"), "is a file"),
    ("output_dir under a file", "train", run_config(output_dir="A_FILE/run"), "not a writable folder"),
    ("output_dir on a filesystem that refuses writes", "train", run_config(output_dir="/proc/lmjepa-run/x"),
     "not a writable folder"),
    # --- sweep specs
    ("sweep: seed for seeds", "sweep", sweep_spec(seed=[1]), "did you mean 'seeds'"),
    ("sweep: duplicate seed", "sweep", sweep_spec(seeds=[4, 4]), "repeats [4]"),
    ("sweep: seed as a string", "sweep", sweep_spec(seeds=["8"]), "integers"),
    ("sweep: no cells", "sweep", sweep_spec(cells={}), "cells"),
    ("sweep: base missing", "sweep", sweep_spec(base="nope.yaml"), "nope.yaml"),
    ("sweep: concurrency 0", "sweep", sweep_spec(concurrency=0), "concurrency"),
    ("sweep: cell with an unknown key", "sweep", sweep_spec(cells={"a": {"jepa.lbdd": 1}}),
     "cell 'a': unknown config key 'jepa.lbdd'; did you mean 'jepa.lbd'"),
]


@pytest.fixture()
def sentinel(monkeypatch):
    def reached(*args, **kwargs):
        raise AssertionError("the bad input reached training")

    monkeypatch.setattr(evaluation_run, "_train_and_evaluate", reached)


def _materialise(tmp_path, content, tiny_model_dir, data_dir) -> str:
    """Write the case's file into ``tmp_path``; return the CLI argument."""
    if content is None:
        return "nlrx-synth-smolm2"
    (tmp_path / "broken.jsonl").write_text('{"text": "lines with a", "code": "a.*"}\n{not json\n')
    (tmp_path / "fieldless.jsonl").write_text('{"question": "a"}\n')
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "caf\xe9", "code": "b"}\n'.encode("latin-1"))
    (tmp_path / "a_file").write_text("not a folder")
    names = {"OUT": str(tmp_path / "out"), "MODEL": str(tiny_model_dir), "DATA": str(data_dir),
             "BROKEN": str(tmp_path / "broken.jsonl"), "FIELDLESS": str(tmp_path / "fieldless.jsonl"),
             "LATIN1": str(tmp_path / "latin1.jsonl"), "A_FILE": str(tmp_path / "a_file")}
    if isinstance(content, dict):
        if "base" in content:  # a sweep spec over a valid base
            base = yaml.safe_dump(run_config())
            for placeholder, value in names.items():
                base = base.replace(placeholder, value)
            (tmp_path / "base.yaml").write_text(base)
        text = yaml.safe_dump(content, sort_keys=False)
    else:
        text = content
    for placeholder, value in names.items():
        text = text.replace(placeholder, value)
    (tmp_path / "spec.yaml").write_text(text)
    return str(tmp_path / "spec.yaml")


@pytest.mark.parametrize("name, command, content, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_rc_2_and_creates_nothing(tmp_path, monkeypatch, capsys, sentinel, tiny_model_dir,
                                                        data_dir, name, command, content, expected):
    monkeypatch.chdir(tmp_path)
    target = _materialise(tmp_path, content, tiny_model_dir, data_dir)
    start = time.perf_counter()
    code = main([command, target])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lmjepa")]
    print(f"BAD-INPUT\t{name}\t{lines[0] if lines else err[-200:]}")  # `pytest -s -k bad_input | grep BAD-INPUT`: the table
    assert code == 2 and "Traceback" not in err, err[-1500:]
    assert len(lines) == 1 and expected in lines[0], err[-1500:]
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    assert seconds < 10, f"{seconds:.1f} s: a bad input must fail before anything heavy"


def test_the_table_has_at_least_40_cases():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_a_corrected_rerun_just_works_after_a_refused_start(tmp_path, monkeypatch, sentinel, tiny_model_dir, data_dir):
    """A start that failed before any save leaves no folder behind; and a folder whose run never saved anything
    takes a corrected config instead of refusing it as "a different config"."""
    from lmjepa.training import run_folder
    from lmjepa.training.config import RunConfig
    from lmjepa.config import from_dict

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    first = from_dict({**run_config(), "output_dir": str(out), "model": {"name": str(tiny_model_dir)},
                       "data": {"data_dir": str(data_dir), "max_train_examples": 8}}, RunConfig)
    run_folder.prepare(first)  # a start that died before its first checkpoint: config.yaml only
    corrected = first.with_overrides({"train.learning_rate": 5e-5})
    assert run_folder.prepare(corrected) is None  # accepted, and recorded
    assert "5.0e-05" in (out / "config.yaml").read_text() or "5e-05" in (out / "config.yaml").read_text()
    (out / "checkpoint-2").mkdir()
    with pytest.raises(Exception, match="different config"):  # once a checkpoint exists, it is protected
        run_folder.prepare(first)
