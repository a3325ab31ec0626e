"""What a user meets first: configs checked at load, clear one-line errors, data checked before the
model, paths relative to the config file, readable result files, a run folder that never resumes
another config's checkpoint, and a training log in run.log."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
import yaml

from lmjepa.analysis.analyze import analyze_config
from lmjepa.analysis.geometry import effective_rank
from lmjepa.cli.main import main
from lmjepa.config import from_dict, load_config
from lmjepa.data.jsonl import DataError, read_examples
from lmjepa.errors import ConfigError
from lmjepa.io import atomic_write_json
from lmjepa.objectives.predict_reconstruct import collapse_monitors
from lmjepa.training import run as run_module
from lmjepa.training.config import load_run_config
from lmjepa.training.pretrain_config import PretrainConfig


@pytest.mark.parametrize("key, value, allowed", [
    ("jepa.views", "pakced", "['separate', 'packed', 'shared_prefix', 'multiview', 'auto']"),
    ("jepa.distance", "cos", "['cosine', 'l2', 'mse', 'infonce']"),
    ("model.attn_implementation", "flash", "[None, 'sdpa', 'eager', 'flash_attention_2']"),
    ("data.subset", "random", "[None, 'first', 'spread']"),
])
def test_every_choice_is_checked_at_load(tmp_path, key, value, allowed):
    section, leaf = key.split(".")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({section: {leaf: value}}))
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert str(err.value) == f"{path}: config key {key!r}: {value!r} is not one of {allowed}"


def test_pretrain_and_analyze_choices_are_checked_too(tmp_path):
    with pytest.raises(ConfigError, match=r"'objective.lambda_mode': 'learned' is not one of \['fixed'"):
        from_dict({"objective": {"lambda_mode": "learned"}}, PretrainConfig)
    with pytest.raises(ConfigError, match=r"'poolings': 'avg' is not one of"):
        analyze_config(None, [], {"poolings": ["mean", "avg"]})
    with pytest.raises(ConfigError, match=r"'tsne_pooling': 'avg'"):
        analyze_config(None, [], {"tsne_pooling": "avg"})


def test_task_and_metric_are_checked_before_any_model(tmp_path, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(run_module, "load_model", no_model)
    monkeypatch.setattr(run_module, "load_tokenizer", no_model)
    path = tmp_path / "c.yaml"
    for text, message in [("task: nlrx-synt\n", "unknown task 'nlrx-synt'"),
                          ("tasks: {t: {test_file: x.jsonl, metric: regexp}}\ntask: t\n",
                           "task 't': metric 'regexp' is not one of"),
                          ("jepa: {views: pakced}\n", "'jepa.views': 'pakced' is not one of"),
                          ("variants: {a: {jepa.lbdd: 1}}\n", "variant 'a': unknown config key 'jepa.lbdd'")]:
        path.write_text(text)
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1  # one line, no traceback


def test_unknown_key_suggests_the_closest_and_prints_no_stray_quotes(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("jepa: {lbd: 1.0}\n")
    assert main(["train", str(path), "--set", "jepa.lbdd=2"]) == 2
    assert capsys.readouterr().err == f"lmjepa: error: {path}: unknown config key 'jepa.lbdd'; did you mean 'jepa.lbd'?\n"
    path.write_text("jepa: {predictor: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert str(err.value).endswith("unknown config key 'jepa.predictor'; did you mean 'predictors'?")


def test_an_internal_error_shows_its_traceback(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise KeyError("an internal bug, not a user mistake")

    from lmjepa.data import build as build_module

    monkeypatch.setattr(build_module, "gsm8k_rows", bug)
    monkeypatch.setitem(build_module.BUILDERS, "gsm8k", ("gsm8k/train.jsonl", "x.jsonl", bug))
    with pytest.raises(KeyError, match="internal bug"):
        main(["build-data", "gsm8k", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o.jsonl")])


def test_relative_paths_in_a_config_resolve_against_its_folder(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "mydata").mkdir()
    path = tmp_path / "configs" / "c.yaml"
    path.write_text("data: {data_dir: ../mydata, train_file: ../mydata/train.jsonl}\n")
    monkeypatch.chdir("/")
    config = load_run_config(path)
    assert config.data.data_dir == str(tmp_path / "mydata")
    assert config.data.train_file == str(tmp_path / "mydata" / "train.jsonl")
    config = load_run_config(path, {"data.eval_file": "rel/test.jsonl"})  # the command line: relative to the cwd
    assert config.data.eval_file == "rel/test.jsonl"
    pretrain = tmp_path / "configs" / "p.yaml"
    pretrain.write_text("text: [offline-corpus, ./extra.txt]\n")
    assert load_config(pretrain, cls=PretrainConfig).text == ["offline-corpus", str(tmp_path / "configs" / "extra.txt")]


def test_data_dir_from_the_environment_works_from_any_folder(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("LMJEPA_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    config = load_run_config(os.path.join(os.path.dirname(__file__), "..", "configs", "nlrx-synth-smollm2.yaml"))
    assert config.data.data_dir is None  # the preset does not hard-code the folder
    assert run_module.data_file(config, "train") == data_dir / "llm-jepa" / "synth_train.jsonl"


def test_result_files_keep_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode)
    assert mode == 0o666 & ~old  # as open() would create it under the process's umask


def test_roles_out_of_order_and_malformed_json_name_file_line_and_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                    '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}\n')
    with pytest.raises(DataError, match=rf"{path}:2: messages\[1\] is a 'user' turn after the 'assistant' turn"):
        read_examples(path)
    line = '{"text": "a", "code": "b",, "x": 1}'
    path.write_text(line + "\n")
    with pytest.raises(DataError) as err:
        read_examples(path)
    column = line.index(",,") + 2  # 1-based column of the second comma
    assert str(err.value).startswith(f"{path}:1:{column}: malformed JSON")
    caret_line = str(err.value).splitlines()[-1]
    excerpt_line = str(err.value).splitlines()[-2]
    assert excerpt_line[caret_line.index("^")] == ","  # the caret points at the offending character


def test_bad_data_stops_before_the_model_loads(tmp_path, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data were checked")

    monkeypatch.setattr(run_module, "build_model", no_model)
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "q", "code": "a"}\n{"text": "q"}\n')
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run"), "data": {"train_file": str(bad)}}))
    assert main(["train", str(path)]) == 2
    assert f"{bad}:2: missing or non-string field 'code'" in capsys.readouterr().err


def test_collapse_monitor_rank_equals_the_geometry_metric():
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.linspace(0.1, 3, 16))
    assert collapse_monitors(z)["effective_rank"] == pytest.approx(effective_rank(z.numpy()), rel=1e-5)


def test_both_trainers_share_one_ema_target_one_log_and_one_checkpointing():
    """One owner per concept: the decoder and the P&R trainers both take their metric log, held-batch monitor and
    checkpoints from the shared mixins, and the EMA update (``lerp_``) is written once, in training/monitoring.py."""
    from pathlib import Path

    from lmjepa.training.checkpoints import AtomicCheckpoints
    from lmjepa.training.monitoring import MetricLog
    from lmjepa.training.pretrain import PretrainTrainer
    from lmjepa.training.trainer import JEPATrainer

    for trainer in (JEPATrainer, PretrainTrainer):
        assert issubclass(trainer, MetricLog) and issubclass(trainer, AtomicCheckpoints)
        assert "log" not in vars(trainer) and "monitors" not in vars(trainer)  # no private copy of either
    src = Path(__file__).resolve().parents[1] / "src" / "lmjepa"
    updates = sorted(str(p.relative_to(src)) for p in src.rglob("*.py") if ".lerp_(" in p.read_text())
    assert updates == ["training/monitoring.py"], f"EMA updates written in {updates}"
