"""Encoder pretraining end to end on a tiny BERT: collator masks, EMA once per optimizer step,
logged parts and monitors, the MLM-only control, resume."""

from __future__ import annotations

import json
import time

import numpy as np
import yaml

import pytest
import torch
from scipy.stats import spearmanr
from transformers import AutoModel, DataCollatorForLanguageModeling

from lmjepa.config import from_dict
from lmjepa.data.pretrain_collator import HybridCollator
from lmjepa.models.loading import load_tokenizer
from lmjepa.training.pretrain_config import PretrainConfig
from lmjepa.objectives.predict_reconstruct import ema_momentum
from lmjepa.training import run_folder
from lmjepa.training.monitoring import EMATarget
from lmjepa.training.pretrain import pretrain

from conftest import assert_plot


@pytest.fixture(scope="module")
def bert_tokenizer():
    try:
        return load_tokenizer("bert-base-uncased", chat_template=False)
    except FileNotFoundError as err:
        pytest.skip(str(err))


def _config(tmp_path, text, **objective) -> PretrainConfig:
    return from_dict({
        "name": "tiny", "output_dir": str(tmp_path / "run"), "text": [str(text)],
        "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "predictor_layers": 1, "max_length": 32},
        "objective": {"monitor_every": 2, "min_keep": 2, **objective},
        "train": {"batch_size": 8, "max_steps": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 2,
                  "gradient_accumulation_steps": 2, "save_total_limit": 3, "extra": {"disable_tqdm": True}},
    }, PretrainConfig)


@pytest.fixture()
def text_file(tmp_path, data_dir):
    lines = (data_dir / "glue" / "SST-2" / "train.tsv").read_text().splitlines()[1:81]
    path = tmp_path / "text.txt"
    path.write_text("\n".join(line.split("\t")[0] for line in lines))
    return path


def test_collator_never_masks_padding_or_special_tokens(bert_tokenizer, tmp_path, text_file):
    config = _config(tmp_path, text_file)
    collate = HybridCollator(bert_tokenizer, config.objective, config.train.seed)
    texts = text_file.read_text().splitlines()[:16]
    features = [{"input_ids": ids} for ids in bert_tokenizer(texts, truncation=True, max_length=32)["input_ids"]]
    batch = collate(features)
    special = torch.isin(batch["clean_ids"], torch.tensor(bert_tokenizer.all_special_ids))
    for b, f in enumerate(features):
        assert batch["clean_ids"][b, : len(f["input_ids"])].tolist() == f["input_ids"]  # x recovered exactly
    assert not (batch["labels"] != -100)[special].any()
    assert not batch["context"][special].any() and not batch["targets"].any(1)[special].any()
    assert not (batch["context"] & batch["targets"].any(1)).any()
    # the MLM masks are those of transformers' collator with the run's seed: the same for the hybrid and the control
    reference = DataCollatorForLanguageModeling(bert_tokenizer, mlm_probability=0.15, seed=config.train.seed)(features)
    assert torch.equal(batch["labels"], reference["labels"]) and torch.equal(batch["input_ids"], reference["input_ids"])


def test_pretrain_hybrid_and_control(tmp_path, text_file, bert_tokenizer, monkeypatch):
    calls = []
    original = EMATarget.update

    def crash_at_step_3(self, model, step, total):
        calls.append(ema_momentum(step, total, self.start, self.end))
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        time.sleep(1.5)  # two slow steps before checkpoint-2: the resumed run must count them
        original(self, model, step, total)

    monkeypatch.setattr(EMATarget, "update", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(_config(tmp_path, text_file))
    assert (tmp_path / "run" / "checkpoint-2").is_dir() and not (tmp_path / "run" / "metrics.json").exists()
    saved = json.loads((tmp_path / "run" / "checkpoint-2" / "trainer_state.json").read_text())
    before = saved["stateful_callbacks"]["TrainingClock"]["args"]["seconds_before"]
    calls.clear()
    monkeypatch.setattr(EMATarget, "update", lambda self, model, step, total: (
        calls.append(ema_momentum(step, total, self.start, self.end)), original(self, model, step, total)))
    metrics = pretrain(_config(tmp_path, text_file))  # resumes from checkpoint-2: two steps left
    assert metrics["train_steps"] == 4 and len(calls) == 2  # once per optimizer step (2 micro-batches each)
    assert before >= 3.0  # the two 1.5-s sleeps, recorded with the checkpoint
    assert metrics["train_seconds"] >= round(before, 1)  # the first process's steps count too
    assert calls == pytest.approx([0.996 + 0.004 * 3 / 4, 1.0])
    logged = {k for row in metrics["log_history"] for k in row}
    assert {"mlm_loss", "jepa_loss", "lambda", "embedding_std", "effective_rank"} <= logged
    encoder = AutoModel.from_pretrained(tmp_path / "run" / "model")
    assert encoder.config.hidden_size == 32
    assert not list((tmp_path / "run").glob("checkpoint-*"))
    calls.clear()
    assert pretrain(_config(tmp_path, text_file)) == metrics and not calls  # finished: not recomputed
    control = pretrain(_config(tmp_path / "c", text_file, lambda_mode="mlm_only"))
    logged = {k for row in control["log_history"] for k in row}
    assert "jepa_loss" not in logged and "mlm_loss" in logged
    with pytest.raises(ValueError, match="different config"):
        pretrain(_config(tmp_path, text_file, lbd=0.9))


def test_forced_pretrain_after_a_killed_run_of_another_config_starts_from_step_0(tmp_path, text_file, bert_tokenizer,
                                                                                  monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before metrics.json")

    with monkeypatch.context() as patch:
        patch.setattr(run_folder, "finish", killed)
        with pytest.raises(KeyboardInterrupt):
            pretrain(_config(tmp_path, text_file))
    assert list((tmp_path / "run").glob("checkpoint-*"))  # the killed run left checkpoints
    other = _config(tmp_path, text_file, lbd=0.9)
    metrics = pretrain(other, force=True)
    steps = [row["step"] for row in metrics["log_history"] if "loss" in row]
    assert steps == [1, 2, 3, 4]  # trained from step 0, not resumed from the other config's checkpoint-4
    assert "resuming" not in (tmp_path / "run" / "run.log").read_text().split("pretraining text")[-1]
    assert "step 1: loss=" in (tmp_path / "run" / "run.log").read_text()  # the training log is in run.log


def test_probe_pieces_closed_forms():
    from lmjepa.analysis.encoder_probes import f1_score, pair_features, sts_spearman, train_head

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    x = rng.normal(size=(200, 6))
    x[:, 0] += 6.0 * y  # one informative direction (a shift of every dim would be removed by the LayerNorm)
    assert (train_head(x, y, x, epochs=200, lr=1e-2) == y).mean() > 0.97  # LayerNorm caps it at 0.98
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    feats = pair_features(a, b)
    assert feats.shape == (5, 12) and np.allclose(feats[:, 6:9], np.abs(a - b)) and np.allclose(feats[:, 9:], a * b)
    assert f1_score(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    # scores that are an increasing function of the cosine give ρ = 1, a decreasing one too (slope < 0 is fitted)
    u = rng.normal(size=(50, 4))
    v = u + rng.normal(size=(50, 4)) * np.linspace(0.1, 3, 50)[:, None]
    cos = np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    assert sts_spearman((u, v, cos ** 3), (u, v, cos ** 3)) == pytest.approx(1.0)
    assert sts_spearman((u, v, -cos), (u, v, -cos)) == pytest.approx(1.0)


def test_cli_pretrain_and_probe(tmp_path, text_file, bert_tokenizer, data_dir, capsys):
    from lmjepa.cli.main import main

    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({**_config(tmp_path, text_file).to_dict(),
                                      "variants": {"hybrid": {}, "mlm-only": {"objective.lambda_mode": "mlm_only"}}}))
    assert main(["pretrain", str(config), "--set", "train.max_steps=2"]) == 0
    runs = [str(tmp_path / "run" / v) for v in ("hybrid", "mlm-only")]
    assert main(["probe", *runs, "--data-dir", str(data_dir), "--max-train", "64", "--max-eval", "48",
                 "--out", str(tmp_path / "cmp")]) == 0
    table = capsys.readouterr().out
    assert "| hybrid |" in table and "| mlm-only |" in table and "MRPC F1" in table
    result = json.loads((tmp_path / "cmp" / "probes.json").read_text())[runs[0]]
    per_example = result["per_example"]
    assert result["sst2_accuracy_seeds"][0] == pytest.approx(np.mean(per_example["sst2_correct"]))
    assert result["stsb_spearman"] == pytest.approx(spearmanr(per_example["stsb_predicted"], per_example["stsb_gold"])[0])
    assert {f"{p}/uniformity" for p in ("last", "mean", "max", "attention")} <= set(result)
    assert len(result["sst2_accuracy_seeds"]) == 5 and result["sst2_accuracy"] == pytest.approx(np.mean(result["sst2_accuracy_seeds"]))
    assert len(result["per_example"]["sst2_correct"]) == 48 and len(result["per_example"]["stsb_gold"]) == 48
    assert "Paired against `hybrid`" in table and "| mlm-only | STS-B (stsb_spearman) |" in table
    assert_plot(tmp_path / "cmp" / "training_curves.png")
    assert "| *majority class (no encoder)* |" in table
    assert "training_curves.png" in (tmp_path / "cmp" / "probes.md").read_text()


def test_majority_baselines_match_counts(data_dir):
    from lmjepa.data.text import read_table
    from lmjepa.analysis.encoder_probes import majority_baselines

    chance = majority_baselines(str(data_dir), max_train=64, max_eval=48)
    train = [int(r["label"]) for r in read_table(data_dir / "glue" / "SST-2" / "train_full.tsv")[:64]]
    dev = [int(r["label"]) for r in read_table(data_dir / "glue" / "SST-2" / "dev.tsv")[:48]]
    majority = max(set(train), key=train.count)
    assert chance["sst2_accuracy"] == dev.count(majority) / len(dev)
    test = [int(r["Quality"]) for r in read_table(data_dir / "glue" / "MRPC" / "msr_paraphrase_test.txt")[:48]]
    positive = test.count(1) / len(test)  # the majority of MSRP train is "paraphrase": F1 = 2p / (1 + p)
    assert chance["mrpc_f1"] == pytest.approx(2 * positive / (1 + positive))


def test_compare_encoders_against_independent_tests():
    from scipy.stats import binomtest, spearmanr

    from lmjepa.analysis.encoder_probes import _spearman_rows, compare_encoders

    rng = np.random.default_rng(0)
    gold = rng.normal(size=80)
    x = rng.normal(size=(3, 80))
    assert np.allclose(_spearman_rows(x, np.tile(gold, (3, 1))), [spearmanr(row, gold).statistic for row in x])
    a_right = np.array([True] * 30 + [False] * 10 + [True] * 2 + [False] * 8)  # discordant: 2 vs 8
    b_right = np.array([True] * 30 + [False] * 10 + [False] * 2 + [True] * 8)
    base = {"sst2_accuracy": a_right.mean(), "mrpc_f1": 0.5, "stsb_spearman": 0.3,
            "per_example": {"sst2_correct": a_right.tolist(), "mrpc_correct": a_right.tolist(),
                            "stsb_predicted": (gold + rng.normal(size=80)).tolist(), "stsb_gold": gold.tolist()}}
    same = dict(base, per_example=dict(base["per_example"]))
    other = dict(base, sst2_accuracy=b_right.mean(), per_example=dict(base["per_example"], sst2_correct=b_right.tolist()))
    rows = {r["probe"]: r for r in compare_encoders(base, other)}
    assert rows["SST-2"]["p"] == pytest.approx(binomtest(2, 10, 0.5).pvalue)  # exact McNemar = binomial on discordant
    assert rows["SST-2"]["delta"] == pytest.approx(6 / 50) and "base right / other wrong 2, the reverse 8" in rows["SST-2"]["test"]
    assert rows["MRPC"]["p"] == 1.0 and rows["STS-B"]["p"] == 1.0 and "[+0.000, +0.000]" in rows["STS-B"]["test"]
    ps = sorted([rows[k]["p"] for k in rows])
    assert rows["SST-2"]["p_adjusted"] == pytest.approx(min(1.0, 3 * ps[0]))  # Holm: smallest p × family size
    assert all(not r["reject"] for r in compare_encoders(base, same))
    better = dict(base, per_example=dict(base["per_example"], stsb_predicted=gold.tolist()))
    stsb = {r["probe"]: r for r in compare_encoders(base, better)}["STS-B"]
    assert stsb["p"] < 0.01 and stsb["delta"] == pytest.approx(0.0)  # Δ is of the stored ρ values, the test of the rows
