"""Multiple choice by next-token probability (HellaSwag): after the full chat-templated prompt
(never truncated — the reference cut HellaSwag prompts to 128 tokens, losing the endings), the
answer is the choice whose token has the highest next-token probability."""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..data.jsonl import Example
from ..errors import ConfigError
from .batching import left_pad, length_sorted_batches
from .generate import GenerationLog, prompt_ids


def choice_token_ids(tokenizer: PreTrainedTokenizerBase, choices: tuple[str, ...]) -> list[int]:
    """One token id per choice. Raises ConfigError if a choice is not a single token."""
    ids = []
    for choice in choices:
        tokens = tokenizer(choice, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise ConfigError(f"choice {choice!r} is {len(tokens)} tokens for this tokenizer; choices must be one token")
        ids.append(tokens[0])
    return ids


@torch.no_grad()
def choice_logprobs(model, tokenizer: PreTrainedTokenizerBase, examples: list[Example], choices: tuple[str, ...],
                    batch_size: int = 16, progress: bool = True, log: GenerationLog | None = None) -> torch.Tensor:
    """``(N, C)`` float32: log-probability of each choice's token as the next token after each prompt.

    Prompts are left-padded per batch with position ids counted over real tokens only, so each
    row equals the unpadded forward of its prompt. With ``log`` (a ``GenerationLog`` made with these
    ``choices``), a batch it holds is taken from it (float32 values survive its JSON exactly), and each batch
    computed is appended to it as soon as it is done; the result is the same either way.
    """
    model.eval()
    ids_per_choice = choice_token_ids(tokenizer, choices)
    prompts = [prompt_ids(example, tokenizer) for example in examples]
    out = torch.empty(len(prompts), len(choices))
    device = next(model.parameters()).device
    for batch in tqdm(length_sorted_batches(prompts, batch_size), desc="choose", unit="batch", disable=not progress):
        batch_prompts = [prompts[i] for i in batch]
        recorded = log.lookup(batch_prompts) if log is not None else None
        if recorded is not None:
            out[batch] = torch.tensor(recorded[0], dtype=out.dtype)
            continue
        start = time.perf_counter()
        ids, mask = left_pad(batch_prompts, tokenizer.pad_token_id, device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits[:, -1]
        out[batch] = logits.float().log_softmax(dim=-1)[:, ids_per_choice].cpu()
        if log is not None:
            log.record(batch_prompts, out[batch].tolist(), None, time.perf_counter() - start)
    return out


def choose(model, tokenizer: PreTrainedTokenizerBase, examples: list[Example], choices: tuple[str, ...],
           batch_size: int = 16, progress: bool = True, log: GenerationLog | None = None) -> list[str]:
    """The most probable choice for each example (ties go to the earlier choice); ``log`` as in
    ``choice_logprobs``."""
    logprobs = choice_logprobs(model, tokenizer, examples, choices, batch_size, progress, log)
    return [choices[i] for i in logprobs.argmax(dim=1).tolist()]
