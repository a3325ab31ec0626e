"""Batched greedy generation with a KV cache and left padding."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.jsonl import Example
from .batching import left_pad, length_sorted_batches


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
    with_stops: bool = False,
) -> list[str] | tuple[list[str], list[bool]]:
    """Greedy completions for each example's prompt, in input order.

    Prompts are sorted by length and left-padded per batch (less padding); generation stops at
    the tokenizer's eos (the end-of-turn token) or after ``max_new_tokens``. Returns decoded text
    without special tokens, stripped of surrounding whitespace; with ``with_stops`` also, per
    example, whether it *stopped*: the eos token was generated within ``max_new_tokens``.
    """
    model.eval()
    prompts = [prompt_ids(example, tokenizer) for example in examples]
    outputs: list[str] = [""] * len(prompts)
    stopped: list[bool] = [False] * len(prompts)
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    for batch in tqdm(length_sorted_batches(prompts, batch_size), desc="generate", unit="batch", disable=not progress):
        ids, mask = left_pad([prompts[i] for i in batch], pad, device)
        width = ids.shape[1]
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )
        new = generated[:, width:]
        ended = (new == tokenizer.eos_token_id).any(dim=1).tolist()  # rows padded after eos hold it too
        for row, index in enumerate(batch):
            outputs[index] = tokenizer.decode(new[row], skip_special_tokens=True).strip()
            stopped[index] = bool(ended[row])
    return (outputs, stopped) if with_stops else outputs


def answer_prefix_ids(example: Example, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The training sequence of ``example`` cut right after its gold answer: the full chat render (system +
    user + assistant) up to the answer's last character, tokenised. The end-of-turn token comes next."""
    rendered = tokenizer.apply_chat_template(example.messages(with_answer=True), tokenize=False)
    end = rendered.rindex(example.code) + len(example.code)
    return tokenizer(rendered[:end], add_special_tokens=False)["input_ids"]


@torch.no_grad()
def end_of_turn_probability(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
                            batch_size: int = 32) -> list[tuple[float, bool]]:
    """Teacher-forced termination (issue 33): per example, p(eos | prompt + gold answer), the probability the
    model gives the end-of-turn token (``tokenizer.eos_token_id``) right after the gold answer, and whether it
    is the greedy choice there (a greedy decoder that wrote the answer stops exactly then iff it is).

    Rows are right-padded (positions as unpadded), read at their last real token. Returns ``[(p, greedy)]``
    in input order, p a probability in [0, 1]. The termination analyses of the official code record the same
    quantity (VigneshThiruvel/llm-jepa-analysis, "p(eot) after the gold answer")."""
    model.eval()
    rows = [answer_prefix_ids(example, tokenizer) for example in examples]
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    out: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
    for batch in length_sorted_batches(rows, batch_size):
        width = max(len(rows[i]) for i in batch)
        ids = torch.tensor([rows[i] + [tokenizer.pad_token_id] * (width - len(rows[i])) for i in batch], device=device)
        mask = torch.tensor([[1] * len(rows[i]) + [0] * (width - len(rows[i])) for i in batch], device=device)
        last = torch.tensor([len(rows[i]) - 1 for i in batch], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(len(batch), device=device), last]
        probs = torch.softmax(logits.float(), dim=-1)
        for row, index in enumerate(batch):
            out[index] = (probs[row, eos].item(), bool(probs[row].argmax().item() == eos))
    return out
