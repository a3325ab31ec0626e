"""Shared fixtures: the real SmolLM2 tokenizer (offline, from the packaged GGUF), tiny models built
in code, and a few real NL-RX rows. No hub access anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmjepa.models.loading import add_predictor_tokens, load_tokenizer, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on the cores: one torch thread each
    torch.set_num_threads(1)
DATA_DIR = Path(os.environ.get("LMJEPA_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "llm-jepa" / "synth_train.jsonl").is_file():
        pytest.skip(f"real data not found under {DATA_DIR} (set LMJEPA_DATA_DIR)")
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
