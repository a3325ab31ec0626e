"""Batched greedy generation with a KV cache and left padding."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.jsonl import Example


def prompt_ids(example: Example, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Chat-templated prompt (system + user + generation prompt), untruncated.

    It is a prefix of the training sequence of the same example (tests check it), so the model
    generates exactly where NTP training taught it to.
    """
    rendered = tokenizer.apply_chat_template(example.messages(with_answer=False), tokenize=False, add_generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    max_new_tokens: int = 64,
    batch_size: int = 32,
    progress: bool = True,
) -> list[str]:
    """Greedy completions for each example's prompt, in input order.

    Prompts are sorted by length and left-padded per batch (less padding); generation stops at
    the tokenizer's eos (the end-of-turn token) or after ``max_new_tokens``. Returns decoded text
    without special tokens, stripped of surrounding whitespace.
    """
    model.eval()
    prompts = [prompt_ids(example, tokenizer) for example in examples]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        width = max(len(prompts[i]) for i in batch)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in batch], device=device)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch], device=device)
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )
        for row, index in enumerate(batch):
            outputs[index] = tokenizer.decode(generated[row, width:], skip_special_tokens=True).strip()
    return outputs
