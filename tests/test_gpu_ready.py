"""GPU-ready settings and presets, checked on a CPU: precision, attention choice, trackers, the paper
presets (loaded and resolved, never downloaded), and the offline-model and vLLM errors."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest
import yaml

from lmjepa.cli.main import main
from lmjepa.errors import ConfigError
from lmjepa.evaluation.tasks import check_config
from lmjepa.models.loading import ModelNotAvailable, resolve_model_path
from lmjepa.training.config import load_run_config
from lmjepa.training.run import training_arguments

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"llama-3.2-1b-instruct": ("meta-llama/Llama-3.2-1B-Instruct", {"synth": (2e-5, 1.0, 1), "gsm8k": (2e-5, 0.5, 4),
                                                                         "spider": (4e-5, 1.0, 3)}),
         "gemma-2-2b-it": ("google/gemma-2-2b-it", {"synth": (1e-5, 2.0, 4)}),
         "openelm-1_1b-instruct": ("apple/OpenELM-1_1B-Instruct", {"synth": (8e-5, 4.0, 3)}),
         "olmo-2-0425-1b-instruct": ("allenai/OLMo-2-0425-1B-Instruct", {"synth": (8e-5, 2.0, 0)})}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_load_resolve_and_state_the_papers_settings(name, tmp_path, monkeypatch):
    config = load_run_config(ROOT / "configs" / "paper" / f"{name}.yaml")
    hub_id, settings = PAPER[name]
    assert config.model.name == hub_id and config.train.precision == "bf16" and config.train.num_train_epochs == 4
    for task, (lr, lbd, k) in settings.items():
        variant = config.with_overrides(config.variants[f"{task}-llm-jepa"])
        check_config(variant)
        assert (variant.train.learning_rate, variant.jepa.lbd, variant.jepa.predictors) == (lr, lbd, k)
        assert config.with_overrides(config.variants[f"{task}-ntp"]).jepa.lbd == 0.0
    args = training_arguments(config.with_overrides({"train.precision": "fp32"}), tmp_path)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 16
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match=rf"model '{hub_id}' is not available offline.*huggingface-cli download"):
        resolve_model_path(hub_id)


def test_a_missing_model_is_the_first_thing_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "someone/no-such-model"}, "output_dir": str(tmp_path / "run"),
                                    "data": {"train_file": str(tmp_path / "absent.jsonl")}}))
    assert main(["train", str(path)]) == 2
    assert "model 'someone/no-such-model' is not available offline" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_precision_checkpointing_and_trackers(tmp_path, monkeypatch):
    config = load_run_config(ROOT / "configs" / "nlrx-synth-smollm2.yaml",
                             {"train.precision": "bf16", "train.gradient_checkpointing": True})
    args = training_arguments(config, tmp_path)
    assert args.bf16 and not args.fp16 and args.gradient_checkpointing and args.report_to == ["tensorboard"]
    for overrides, message in [({"train.precision": "fp8"}, r"'train.precision': 'fp8' is not one of"),
                               ({"train.report_to": ["neptune"]}, r"'train.report_to': 'neptune' is not one of"),
                               ({"eval.backend": "sglang"}, r"'eval.backend': 'sglang' is not one of")]:
        with pytest.raises(ConfigError, match=message):
            load_run_config(ROOT / "configs" / "nlrx-synth-smollm2.yaml", overrides)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "flash_attn", "vllm")
                        else real(name, *a))
    for overrides, message in [({"train.report_to": ["wandb"]}, r"'wandb' is not installed \(pip install wandb\)"),
                               ({"model.attn_implementation": "flash_attention_2"}, "needs flash-attn"),
                               ({"eval.backend": "vllm"}, r"pip install 'lmjepa\[vllm\]'")]:
        with pytest.raises(ConfigError, match=message):
            load_run_config(ROOT / "configs" / "nlrx-synth-smollm2.yaml", overrides)
    monkeypatch.setattr(importlib.util, "find_spec", real)
    fp16 = load_run_config(ROOT / "configs" / "nlrx-synth-smollm2.yaml", {"train.precision": "fp16"})
    with pytest.raises(ConfigError, match="'fp16' needs a GPU"):
        training_arguments(fp16, tmp_path)
    monkeypatch.setenv("LMJEPA_SWEEP", "audit")
    monkeypatch.setenv("LMJEPA_CELL", "stp")
    monkeypatch.setenv("LMJEPA_SEED", "82")
    monkeypatch.delenv("MLFLOW_TAGS", raising=False)
    monkeypatch.delenv("WANDB_TAGS", raising=False)
    assert training_arguments(config, tmp_path).run_name == "audit/stp/seed-82"  # the run's tags for trackers
    assert json.loads(os.environ["MLFLOW_TAGS"]) == {"sweep": "audit", "cell": "stp", "seed": "82"}
    assert os.environ["WANDB_TAGS"] == "sweep:audit,cell:stp,seed:82"


def test_bf16_training_runs_on_a_cpu(tmp_path, tiny_model_dir, data_dir, monkeypatch):
    from lmjepa.training import run

    monkeypatch.setattr(run, "native_cpu_bf16", lambda: True)  # the code path, also where bf16 is emulated (tiny)
    config = {"name": "bf16", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
              "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 2},
              "train": {"batch_size": 4, "precision": "bf16", "gradient_checkpointing": True, "logging_steps": 1,
                        "extra": {"disable_tqdm": True}},
              "eval": {"max_new_tokens": 4, "batch_size": 2}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_steps"] == 2 and all(row.get("loss", 0) == row.get("loss", 0) for row in metrics["log_history"])


def test_bf16_is_refused_on_a_cpu_without_native_bf16_before_anything_loads(tmp_path, monkeypatch, tiny_model_dir,
                                                                             data_dir, capsys):
    """Emulated bf16 autocast measured 22× slower than fp32 a step on an AVX2 CPU: a run asking for it there
    stops at once with the key and the fix; with native bf16 units (or a GPU) it is allowed."""
    from lmjepa.training import run

    monkeypatch.setattr(run.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(run, "native_cpu_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"'bf16' on this CPU .* set train.precision: fp32"):
        run.check_precision("bf16")
    with pytest.raises(ConfigError, match="'fp16' needs a GPU"):
        run.check_precision("fp16")
    run.check_precision("fp32")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": str(tiny_model_dir)}, "output_dir": str(tmp_path / "run"),
                                    "task": "nlrx-synth", "data": {"data_dir": str(data_dir)},
                                    "train": {"precision": "bf16"}}))
    assert main(["train", str(path)]) == 2
    assert "train.precision 'bf16' on this CPU" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model").exists() and not list(tmp_path.glob("run/checkpoint-*"))
    monkeypatch.setattr(run, "native_cpu_bf16", lambda: True)
    run.check_precision("bf16")  # native units: allowed
    monkeypatch.setattr(run.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(run, "native_cpu_bf16", lambda: False)
    run.check_precision("bf16")  # a GPU: allowed
