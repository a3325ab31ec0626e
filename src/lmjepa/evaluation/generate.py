"""Batched greedy generation with a KV cache and left padding; a generation log lets a killed evaluation
resume at the batch it had reached."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

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


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (hex) of every parameter's name, dtype, shape and bytes, and of the device: equal for two models
    exactly when greedy decoding cannot tell them apart by their weights. About 1 s for 135 M fp32 parameters."""
    digest = hashlib.sha256(str(next(model.parameters()).device).encode())
    for name, parameter in model.named_parameters():
        tensor = parameter.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, not a copy
    return digest.hexdigest()


class GenerationLog:
    """An append-only JSONL file of finished evaluation batches, so that a killed evaluation resumes at the
    batch it had reached instead of generating everything again (issue 34: nothing lost).

    Each line holds one batch: its key, its outputs (decoded generations, or for multiple choice each row's
    choice log-probabilities, ``choice.choice_logprobs``), whether each row stopped (generation only), and the
    seconds it took. The key hashes the model's weights (``model_fingerprint``), the settings
    (``max_new_tokens``, eos, pad; and ``choices`` for multiple choice) and the batch's prompt token ids, so a
    batch is reused only when computing it again would repeat the same computation; a retrained model, another
    budget, other choices or other rows simply miss. A torn last line (a kill inside a write) is ignored.
    ``reused_batches`` and ``reused_seconds`` (the seconds the reused batches took when they were made) say
    what a resume saved."""

    def __init__(self, path: str | Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                 max_new_tokens: int | None, choices: tuple[str, ...] | None = None):
        self.path = Path(path)
        settings = [model_fingerprint(model), max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id]
        self._base = json.dumps(settings + ([list(choices)] if choices else []))
        self._done: dict[str, dict] = {}
        if self.path.is_file():
            text = self.path.read_text()
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                    self._done[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn line
            if text and not text.endswith("\n"):  # cut a torn tail, or the next line appended would join it
                os.truncate(self.path, len(text[: text.rfind("\n") + 1].encode()))
        self.reused_batches = 0
        self.reused_seconds = 0.0

    def key(self, prompts: list[list[int]]) -> str:
        """The key of one batch: its prompts (token ids, in batch order) under this log's model and settings."""
        return hashlib.sha256((self._base + json.dumps(prompts)).encode()).hexdigest()

    def lookup(self, prompts: list[list[int]]) -> tuple[list, list[bool] | None] | None:
        """The batch's recorded ``(outputs, stopped)`` (``stopped`` None for multiple choice), or None when it
        was never finished."""
        entry = self._done.get(self.key(prompts))
        if entry is None or len(entry["outputs"]) != len(prompts):
            return None
        self.reused_batches += 1
        self.reused_seconds += float(entry["seconds"])
        return entry["outputs"], entry.get("stopped")

    def record(self, prompts: list[list[int]], outputs: list, stopped: list[bool] | None, seconds: float) -> None:
        """Append one finished batch (``outputs`` one JSON value per row; ``stopped`` None for multiple choice)
        and flush it to disk before the next batch starts."""
        entry = {"key": self.key(prompts), "outputs": outputs, "seconds": round(seconds, 3)}
        line = json.dumps(entry | ({"stopped": stopped} if stopped is not None else {}))
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    max_new_tokens: int = 64,
    batch_size: int = 32,
    progress: bool = True,
    with_stops: bool = False,
    log: GenerationLog | None = None,
) -> list[str] | tuple[list[str], list[bool]]:
    """Greedy completions for each example's prompt, in input order.

    Prompts are sorted by length and left-padded per batch (less padding); generation stops at
    the tokenizer's eos (the end-of-turn token) or after ``max_new_tokens``. Returns decoded text
    without special tokens, stripped of surrounding whitespace; with ``with_stops`` also, per
    example, whether it *stopped*: the eos token was generated within ``max_new_tokens``.
    With ``log`` (a ``GenerationLog``), a batch it holds is taken from it, and each batch generated
    is appended to it as soon as it is done; the outputs are the same either way.
    """
    model.eval()
    prompts = [prompt_ids(example, tokenizer) for example in examples]
    outputs: list[str] = [""] * len(prompts)
    stopped: list[bool] = [False] * len(prompts)
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    for batch in tqdm(length_sorted_batches(prompts, batch_size), desc="generate", unit="batch", disable=not progress):
        batch_prompts = [prompts[i] for i in batch]
        recorded = log.lookup(batch_prompts) if log is not None else None
        if recorded is not None:
            for row, index in enumerate(batch):
                outputs[index], stopped[index] = recorded[0][row], bool(recorded[1][row])
            continue
        start = time.perf_counter()
        ids, mask = left_pad(batch_prompts, pad, device)
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
        if log is not None:
            log.record(batch_prompts, [outputs[i] for i in batch], [stopped[i] for i in batch],
                       time.perf_counter() - start)
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
