"""Greedy generation through vLLM (``eval.backend: vllm``): the same prompts as ``generate.py``, token ids
and all, so the two backends differ only in their kernels. Needs a GPU and ``pip install 'lmjepa[vllm]'``."""

from __future__ import annotations

import torch

from ..data.jsonl import Example
from ..errors import ConfigError
from .generate import prompt_ids


def generate_vllm(model_dir: str, tokenizer, examples: list[Example], max_new_tokens: int) -> tuple[list[str], list[bool]]:
    """Greedy completions of each example's prompt with vLLM; returns (texts, stopped) as ``generate``
    with ``with_stops``. ``model_dir``: a Hugging Face folder (a run's ``model/``). Raises ConfigError
    without vLLM or without a GPU."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise ConfigError("eval.backend 'vllm' needs vLLM: pip install 'lmjepa[vllm]' (on a GPU machine)") from None
    if not torch.cuda.is_available():
        raise ConfigError("eval.backend 'vllm' needs a GPU; use eval.backend: hf on a CPU")
    llm = LLM(model=str(model_dir), tokenizer=str(model_dir), seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=[tokenizer.eos_token_id])
    outputs = llm.generate([{"prompt_token_ids": prompt_ids(e, tokenizer)} for e in examples], params)
    texts = [tokenizer.decode(o.outputs[0].token_ids, skip_special_tokens=True).strip() for o in outputs]
    return texts, [o.outputs[0].finish_reason == "stop" for o in outputs]
