"""Shared by both sides of the official-trainer check: the rows, the tiny Llama, the tokenizer's added tokens.

Both sides run in different virtual environments (the official code's transformers; lmjepa's lock) and talk
only through files in the work folder: ``rows.jsonl``, ``tokenizer/``, ``tiny.json`` + ``tiny.pt`` (the initial
weights), and each side's ``*.pt`` outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

# The official finetune.py adds these, in this order, as additional special tokens (setup_model_and_tokenizer);
# both sides add them so the vocabularies (and so the softmax) are identical.
OFFICIAL_TOKENS = [f"<|predictor_{i}|>" for i in range(1, 11)] + ["<|start_header_id|>", "<|end_header_id|>",
                                                                  "<|eot_id|>", "<|perception|>"]
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=1024, tie_word_embeddings=True, rms_norm_eps=1e-5)
ROWS = 4          # one optimizer step: per-device batch 1 × GA 4
LAST_TOKEN = -3   # ChatML ends a view with <|im_end|>\n: -3 is the last predictor / answer token (as --last_token for Qwen)
LR = 1.0          # SGD, no momentum, no clipping: the update is −lr · (the accumulated gradient)


def tokenizer_with_official_tokens(path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    new = [t for t in OFFICIAL_TOKENS if t not in tokenizer.get_vocab()]
    tokenizer.add_special_tokens({"additional_special_tokens": new})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_model(work: Path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**json.loads((work / "tiny.json").read_text())))
    model.load_state_dict(torch.load(work / "tiny.pt"))
    return model.float()


def training_args(work: Path, name: str):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(work / name), per_device_train_batch_size=1, gradient_accumulation_steps=ROWS,
                             max_steps=1, learning_rate=LR, optim="sgd", lr_scheduler_type="constant", warmup_steps=0,
                             weight_decay=0.0, max_grad_norm=0.0, report_to=[], save_strategy="no",
                             remove_unused_columns=False, seed=0, logging_steps=1, disable_tqdm=True, use_cpu=True)


def update(model, before: dict) -> dict:
    return {name: (p.detach() - before[name]).clone() for name, p in model.named_parameters()}
