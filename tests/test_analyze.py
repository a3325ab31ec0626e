"""Poolings against per-row loops, batched embeddings against unpadded forwards, and
``lmjepa analyze`` end to end on a tiny model and real rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lmjepa.analysis.data import load_analysis_data
from lmjepa.analysis.embed import embed_sequences, pool
from lmjepa.cli.main import main
from lmjepa.data.jsonl import DataError
from lmjepa.models.loading import load_tokenizer

from conftest import assert_plot, tiny_llama


def test_poolings_match_per_row_loops_and_ignore_padding():
    torch.manual_seed(0)
    lengths = [5, 2, 7]
    hidden = torch.randn(3, 7, 6)
    mask = torch.tensor([[1] * n + [0] * (7 - n) for n in lengths])
    padded = hidden.clone()
    padded[mask == 0] = 1e4  # garbage in padding must not leak into any pooling
    pooled = pool(padded, mask)
    for row, n in enumerate(lengths):
        h = hidden[row, :n]
        mean = h.mean(0)
        weights = torch.softmax(h @ mean / math.sqrt(6), dim=0)
        expected = {"last": h[-1], "mean": mean, "max": h.max(0).values, "attention": (weights[:, None] * h).sum(0)}
        for name, value in expected.items():
            torch.testing.assert_close(pooled[name][row], value, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(hidden, mask, ["cls"])
    with pytest.raises(ValueError, match="no non-padding"):
        pool(hidden, torch.zeros(3, 7))


def test_batched_embeddings_equal_unpadded_forwards():
    model = tiny_llama(vocab_size=100, seed=1)
    model.train()
    rng = np.random.default_rng(0)
    sequences = [rng.integers(3, 100, size=n).tolist() for n in (4, 9, 1, 6, 9, 3)]
    out = embed_sequences(model, sequences, pad_id=0, batch_size=4, progress=False)
    mid = embed_sequences(model, sequences, pad_id=0, batch_size=2, layer=1, poolings=["mean"], progress=False)
    with torch.no_grad():
        for row, seq in enumerate(sequences):
            states = model(torch.tensor([seq]), output_hidden_states=True).hidden_states
            np.testing.assert_allclose(out["last"][row], states[-1][0, -1].numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(out["mean"][row], states[-1][0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(mid["mean"][row], states[1][0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
    assert model.training  # embedding ran in eval mode and restored the training flag
    with pytest.raises(ValueError, match="layer"):
        embed_sequences(model, sequences, pad_id=0, layer=9, progress=False)
    with pytest.raises(ValueError, match="empty"):
        embed_sequences(model, [[1], []], pad_id=0, progress=False)


def test_analysis_data_sources_and_errors(tmp_path, data_dir):
    views = load_analysis_data("nlrx-synth", "test", 5, str(data_dir))
    assert views.two_view and len(views) == 5
    explicit = tmp_path / "explicit.jsonl"  # the explicit two-view form training reads, not labelled sentences
    explicit.write_text('{"text": "add one and two", "code": "1+2"}\n{"text": "two times three", "code": "2*3"}\n')
    pairs = load_analysis_data(str(explicit))
    assert pairs.two_view and [(e.text, e.code) for e in pairs.examples] == [("add one and two", "1+2"),
                                                                              ("two times three", "2*3")]
    sst = load_analysis_data("sst2", "validation", 30, str(data_dir))
    assert not sst.two_view and len(sst) == 30 and set(sst.labels) == {"0", "1"}
    rt = load_analysis_data("rotten-tomatoes", "test", 40, str(data_dir))  # the file is sorted by label
    assert rt.labels.count("Good") == rt.labels.count("Bad") == 20
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nfine\t1\n\t0\n")
    with pytest.raises(DataError, match=r"bad.tsv:3"):
        load_analysis_data(str(bad))
    one_label = tmp_path / "one.jsonl"
    one_label.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 1}\n')
    with pytest.raises(DataError, match="two distinct labels"):
        load_analysis_data(str(one_label))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{"text": \n')
    with pytest.raises(DataError, match=r"broken.jsonl:2"):
        load_analysis_data(str(broken))


def test_cli_analyze_two_models_side_by_side_then_cached(tmp_path, tiny_model_dir, data_dir, capsys):
    other = tmp_path / "other"
    tok = load_tokenizer(str(tiny_model_dir))
    model = tiny_llama(len(tok), seed=5)
    model.save_pretrained(other)
    tok.save_pretrained(other)
    out = tmp_path / "geo"
    argv = ["analyze", "--model", f"a={tiny_model_dir}", "--model", f"b={other}", "--data", "nlrx-synth",
            "--data-dir", str(data_dir), "--max-examples", "40", "--out", str(out), "--batch-size", "16"]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert "| a |" in report and "| b |" in report and "Text → Code" in report
    result = json.loads((out / "geometry.json").read_text())
    assert set(result["models"]) == {"a", "b"}
    a = result["models"]["a"]
    assert set(a["poolings"]) == {"last", "mean", "max", "attention"}
    assert a["text_code"]["last"]["underdetermined"] is False  # 40 pairs, width 32
    assert len(a["tsne"]["xy"]) == 80 and a["tsne"]["labels"].count("code") == 40
    for png in ("spectra.png", "alignment_uniformity.png", "difference_spectra.png", "tsne.png"):
        assert_plot(out / png)
    cache = (out / "models" / "a.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv[:3] + argv[5:]) == 0  # model a alone: cached, not recomputed
    assert (out / "models" / "a.json").stat().st_mtime_ns == cache
    assert main(argv + ["--layer", "1"]) == 0  # a different layer is a different key
    assert (out / "models" / "a.json").stat().st_mtime_ns != cache


def test_cli_analyze_labelled_sentences(tmp_path, tiny_model_dir, data_dir):
    out = tmp_path / "sst"
    assert main(["analyze", "--model", str(tiny_model_dir), "--data", "sst2", "--split", "validation",
                 "--data-dir", str(data_dir), "--max-examples", "60", "--out", str(out),
                 "--pooling", "mean", "--no-tsne"]) == 0
    result = json.loads((out / "geometry.json").read_text())
    metrics = result["models"][tiny_model_dir.name]["poolings"]["mean"]
    assert metrics["probe_gap"] == pytest.approx(
        metrics["semantic_probe"] - metrics["token_probe"])
    assert not (out / "tsne.png").exists() and not (out / "difference_spectra.png").exists()


def test_chat_views_are_the_views_training_reads_and_a_cache_key_of_their_own(tiny_model_dir, data_dir):
    import hashlib
    from dataclasses import asdict

    from lmjepa.analysis.analyze import AnalyzeConfig, tokenize

    tok = load_tokenizer(str(tiny_model_dir))
    data = load_analysis_data("nlrx-synth", "test", 3, str(data_dir))
    content, chat = tokenize(data, tok, [], 512), tokenize(data, tok, [], 512, "chat")
    start = tok.convert_tokens_to_ids("<|im_start|>")
    for view in ("text", "code"):
        for plain, templated in zip(content[view], chat[view]):
            assert start not in plain and start in templated and len(templated) > len(plain)
    # the default's key is the key from before view_format existed (cached results stay valid); chat's differs
    settings = {k: v for k, v in asdict(AnalyzeConfig()).items() if k not in ("models", "output_dir", "view_format")}
    before = hashlib.sha256(json.dumps([settings, "m"], sort_keys=True).encode()).hexdigest()[:16]
    assert AnalyzeConfig().key("m") == before != AnalyzeConfig(view_format="chat").key("m")
