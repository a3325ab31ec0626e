"""Shared fixtures: the real SmolLM2 tokenizer (offline, from the packaged GGUF), tiny models built
in code, and a few real NL-RX rows. No hub access anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

from lmjepa.models.loading import add_predictor_tokens, load_tokenizer, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on the cores: one torch thread each
    torch.set_num_threads(1)
FIXTURE_DATA = ROOT / "tests" / "fixtures" / "data"


def _fixture_data_dir() -> Path:
    """Without shared/data: the committed fixtures plus NL-RX-SYNTH/TURK decompressed from the package, in one
    folder laid out like shared/data (built once per machine user, atomically)."""
    import gzip
    import shutil
    import tempfile

    from lmjepa.data.tasks import PACKAGED

    folder = Path(tempfile.gettempdir()) / f"lmjepa-test-data-{os.getuid()}"
    if not (folder / ".complete").is_file():
        staging = Path(tempfile.mkdtemp(prefix="lmjepa-test-data-"))
        shutil.copytree(FIXTURE_DATA, staging, dirs_exist_ok=True)
        for packed in PACKAGED.glob("*.jsonl.gz"):
            (staging / "llm-jepa" / packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(packed.read_bytes()))
        (staging / ".complete").touch()
        try:
            staging.rename(folder)
        except OSError:  # another worker won the race: its folder is the same
            shutil.rmtree(staging, ignore_errors=True)
    return folder


_SHARED = Path(os.environ.get("LMJEPA_DATA_DIR", ROOT.parent / "shared" / "data"))
USES_FIXTURES = os.environ.get("LMJEPA_TEST_FIXTURE_DATA") == "1" or not (_SHARED / "llm-jepa").is_dir()
DATA_DIR = _fixture_data_dir() if USES_FIXTURES else _SHARED
"""The data folder of every test: shared/data (or $LMJEPA_DATA_DIR) when present, else the committed fixtures
(``LMJEPA_TEST_FIXTURE_DATA=1`` forces them). Tests never skip for missing data."""


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def base_tokenizer_path() -> str:
    return resolve_model_path("smollm2-135m-instruct")


@pytest.fixture()
def tokenizer(base_tokenizer_path):
    """SmolLM2's tokenizer with one predictor token (a fresh copy per test)."""
    tok = load_tokenizer(base_tokenizer_path)
    add_predictor_tokens(tok, 1)
    return tok


def tiny_llama(vocab_size: int, seed: int = 0, layers: int = 2, attn: str = "sdpa") -> LlamaForCausalLM:
    """A deterministic 2-layer Llama (hidden 32), tied embeddings like SmolLM2."""
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=512,
        attn_implementation=attn,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, base_tokenizer_path) -> Path:
    """A tiny Llama saved with SmolLM2's tokenizer, usable as ``model.name`` in a config."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = load_tokenizer(base_tokenizer_path)
    model = tiny_llama(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def assert_plot(path, min_pixels: int = 200) -> None:
    """``path`` is a PNG that decodes to an image of at least ``min_pixels`` per side with drawn content
    (not one flat colour) — read back with matplotlib, independently of how it was written."""
    from matplotlib import image

    pixels = image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) >= min_pixels, pixels.shape
    assert pixels[..., :3].std() > 0.01, f"{path} is blank"


# --- make test-fast: the modules that train end to end, launch processes or build wheels are "slow" ---------
SLOW_MODULES = {"test_multiprocess", "test_launchers", "test_end_to_end", "test_sweep", "test_audit", "test_two_stage",
                "test_pretrain", "test_packaging", "test_multiview", "test_objective_training", "test_analyze",
                "test_gpu_ready", "test_nlrx_splits", "test_bad_inputs", "test_crash_safety", "test_add_objective",
                "test_examples"}


def factorial_store(folder, seeds=(1, 2, 3), misrecorded=None, official=(0.05, 0.3), n_rows=40, extra=None):
    """A fake store of the dispute's 2 × 2 (``analysis/factorial.py``) with predictions: exact rows are drawn
    per cell at its rate (``official``: the two official cells'; ``extra``: more cells, name → rate); in the
    run ``misrecorded`` ((cell, seed)) one row recorded exact has a decoded string that differs from its
    reference."""
    rng = np.random.default_rng(1)
    rates = {"ntp": 0.6, "llm-jepa": 0.6, "ntp-official": official[0], "llm-jepa-official": official[1], **(extra or {})}
    lines = []
    for seed in seeds:
        for cell, rate in rates.items():
            hits = rng.random(n_rows) < rate
            contains = hits | (rng.random(n_rows) < 0.5)
            run = folder / cell / f"seed-{seed}-abc"
            run.mkdir(parents=True)
            predictions = [{"prediction": f"  r{i}.*\n" if h else "x", "reference": f"r{i}.*", "exact_match": bool(h)}
                           for i, h in enumerate(hits)]
            if (cell, seed) == misrecorded:  # recorded exact, but the strings differ: only a rescoring sees it
                first = int(np.flatnonzero(hits)[0])
                predictions[first]["prediction"] += "."
            (run / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
            metrics = {"exact_match": 100 * hits.mean(), "contains_target": 100 * contains.mean(),
                       "stopped": 100 * (hits.mean() + 0.1) if "official" in cell else 100.0}
            lines.append(json.dumps({"cell": cell, "seed": seed, "config_hash": "abc", "metrics": metrics}))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# --- CI: a skip must name a reason outside lmjepa's control ------------------------------------------------
ALLOWED_SKIPS = ("GPU", "CUDA", "vLLM", "vllm", "flash-attn", "flash_attn")
_SKIPPED: list[str] = []


def pytest_runtest_logreport(report):
    """Collects every skip's reason (under pytest-xdist this runs in the controller, for every worker)."""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    """With ``LMJEPA_STRICT_SKIPS=1`` (``.ci/run``), any skip whose reason is not a missing GPU or vLLM fails the
    run: a green run elsewhere must mean the data and model tests ran."""
    if os.environ.get("LMJEPA_STRICT_SKIPS") != "1" or hasattr(session.config, "workerinput"):
        return
    bad = [s for s in _SKIPPED if not any(word in s for word in ALLOWED_SKIPS)]
    if bad:
        print("\nLMJEPA_STRICT_SKIPS: tests skipped for a reason inside lmjepa's control:\n  " + "\n  ".join(bad))
        session.exitstatus = 1


class Killed(BaseException):
    """A simulated kill: a BaseException, so no ``except Exception`` in the code under test can swallow it."""


class KillAfterStep(TrainerCallback):
    """Raises ``Killed`` at the end of optimizer step ``step`` (after any checkpoint of an earlier step)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed
