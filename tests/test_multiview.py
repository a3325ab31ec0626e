"""Multi-view data (issue 16): the one-forward objective against separate per-view forwards, its NTP
loss against a hand sum, bad rows named by file:line, and a multi-view pretraining run end to end."""

import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from lmjepa.cli.main import main
from lmjepa.data.jsonl import DataError
from lmjepa.data.multiview import MultiViewCollator, encode_views, read_views
from lmjepa.data.packing import forward
from lmjepa.models.loading import add_predictor_tokens, load_tokenizer

from conftest import tiny_llama

GROUPS = [["lines with dog", "lines that contain the string dog", "dog appears in the line"],
          ["three digits", "a number with three digits"]]


@pytest.mark.parametrize("k", [0, 1])
@pytest.mark.parametrize("n", [2, 3])
def test_each_view_predicts_the_next_like_separate_forwards(base_tokenizer_path, k, n):
    tokenizer = load_tokenizer(base_tokenizer_path)
    predictors = add_predictor_tokens(tokenizer, k) if k else []
    groups = [g[:n] for g in GROUPS]  # ragged: the second group has 2 views
    features = [encode_views(g, tokenizer, predictors) for g in groups]
    batch = MultiViewCollator(tokenizer.pad_token_id)(features)
    model = tiny_llama(len(tokenizer)).eval()
    inputs = {key: batch.pop(key) for key in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        got = forward("multiview", model, inputs, batch)
        preds, targets, losses, count = [], [], 0.0, 0
        for group in groups:
            for i, text in enumerate(group):  # independent: each view alone, tokenised here
                ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                source = ids + (predictors if i < len(group) - 1 else [])
                hidden = model(torch.tensor([source]), output_hidden_states=True)
                logits = hidden.logits[0, : len(ids) - 1]
                losses += F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()
                count += len(ids) - 1
                states = hidden.hidden_states[-1][0]
                if i < len(group) - 1:
                    preds.append(states[-1] if k else states[len(ids) - 2])
                if i > 0:
                    targets.append(states[len(ids) - 2])  # the last text token, before the eos token
    assert got.pred.shape[0] == sum(len(g) - 1 for g in groups)
    torch.testing.assert_close(got.pred, torch.stack(preds), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.target, torch.stack(targets), rtol=1e-4, atol=1e-5)
    assert got.outputs.loss.item() == pytest.approx(losses / count, rel=1e-4)  # NTP on every view's text + eos


def test_bad_multiview_rows_are_named(tmp_path):
    path = tmp_path / "views.jsonl"
    path.write_text(json.dumps({"views": ["a", "b", ""]}) + "\n" + json.dumps({"views": ["only one", "  "]}) + "\n")
    with pytest.raises(DataError, match=r"views.jsonl:2: a multi-view row needs at least two non-empty views"):
        read_views(path)
    assert read_views(path, limit=1) == [["a", "b"]]  # empty views are left out of a row that keeps two
    path.write_text(json.dumps({"views": "a b"}) + "\n")
    with pytest.raises(DataError, match=r"views.jsonl:1: expected"):
        read_views(path)


def test_multiview_pretraining_run_end_to_end(tmp_path, tiny_model_dir, data_dir):
    data = tmp_path / "views.jsonl"
    data.write_text("".join(json.dumps({"views": g}) + "\n" for g in GROUPS * 4))
    config = {"name": "mv", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
              "task": "paraphrase-nlrx", "data": {"data_dir": str(data_dir), "train_file": str(data)},
              "jepa": {"predictors": 1, "views": "multiview"}, "eval": {"skip": True},
              "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "extra": {"disable_tqdm": True}}}
    (tmp_path / "mv.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "mv.yaml")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["evaluated"] is False and metrics["train_steps"] == 2
    assert any("jepa_loss" in row for row in metrics["log_history"]) and (tmp_path / "run" / "model").is_dir()
    config["objectives"] = [{"name": "stp", "weight": 0.1}]
    config["output_dir"] = str(tmp_path / "run2")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "bad.yaml")]) == 2  # multiview trains llm-jepa only


def test_paraphrase_builds_are_aligned_views(data_dir, tmp_path):
    from lmjepa.data.build import build

    path, rows = build("paraphrase-nlrx", str(data_dir), tmp_path / "nlrx.jsonl", with_regex=True)
    views = read_views(path, limit=5)
    synth = [json.loads(l)["messages"] for l in (data_dir / "llm-jepa" / "synth_train.jsonl").read_text().splitlines()[:5]]
    turk = [json.loads(l)["messages"] for l in (data_dir / "llm-jepa" / "turk_train.jsonl").read_text().splitlines()[:5]]
    assert rows == 8000 and views == [[s[-2]["content"], t[-2]["content"], s[-1]["content"]] for s, t in zip(synth, turk)]
    if (data_dir / "glue" / "MRPC" / "msr_paraphrase_train.txt").is_file():
        path, rows = build("paraphrase-mrpc", str(data_dir), tmp_path / "mrpc.jsonl")
        lines = (data_dir / "glue" / "MRPC" / "msr_paraphrase_train.txt").read_text(encoding="utf-8-sig").splitlines()
        assert rows == sum(line.startswith("1\t") for line in lines[1:])  # the positive pairs only


def test_inspect_shows_each_view_and_its_enc_tokens(tmp_path, tiny_model_dir, data_dir, capsys):
    data = tmp_path / "views.jsonl"
    data.write_text(json.dumps({"views": GROUPS[0]}) + "\n")
    config = {"name": "mv", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
              "task": "paraphrase-nlrx", "data": {"data_dir": str(data_dir), "train_file": str(data)},
              "jepa": {"predictors": 1, "views": "multiview"}, "eval": {"skip": True}}
    (tmp_path / "mv.yaml").write_text(yaml.safe_dump(config))
    assert main(["inspect", str(tmp_path / "mv.yaml"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    eos = load_tokenizer(str(tiny_model_dir)).eos_token
    assert row["views"][0] == GROUPS[0][0] + eos + "<|predictor_1|>" and row["views"][2] == GROUPS[0][2] + eos
    assert row["trained"][0] == GROUPS[0][0] + eos  # the predictor token is not an NTP label
    assert row["enc_source_token"] == ["<|predictor_1|>"] * 2
    assert row["enc_target_token"] == [" dog", " line"]  # the last text token of views 2 and 3
