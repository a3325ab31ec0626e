"""Generation throughput: lmjepa's batched greedy generation vs per-example ``generate`` (the official
evaluation's loop), on the same NL-RX test rows with the same prompts, predictions compared row by row.

SmolLM2-135M-Instruct (fp32 on a CPU, bf16 with --bf16 on a GPU). Prints predictions per second of each
and their ratio, and how many predictions differ (left padding may change a near-tie of greedy decoding).

    python benchmarks/eval_throughput.py [--rows 64] [--batch-size 32] [--data-dir ../shared/data] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lmjepa.data.jsonl import read_examples
from lmjepa.evaluation.generate import generate, prompt_ids
from lmjepa.models.loading import load_model, load_tokenizer, resolve_model_path


@torch.no_grad()
def one_by_one(model, tokenizer, examples, max_new_tokens: int) -> list[str]:
    """The official loop: one unpadded ``generate`` call per example, greedy."""
    device = next(model.parameters()).device
    outputs = []
    for example in examples:
        ids = torch.tensor([prompt_ids(example, tokenizer)], device=device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        outputs.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = resolve_model_path("smollm2-135m-instruct")
    tokenizer = load_tokenizer(path)
    model = load_model(path, tokenizer).to(device).eval()
    if args.bf16:
        model = model.to(torch.bfloat16)
    examples = read_examples(Path(args.data_dir) / "llm-jepa" / "synth_test.jsonl", args.rows)
    examples = [e.__class__(e.text, e.code, "Convert natural language to regular expression.", e.source) for e in examples]
    generate(model, tokenizer, examples[:2], 4, 2, progress=False)  # warm-up
    start = time.perf_counter()
    batched = generate(model, tokenizer, examples, args.max_new_tokens, args.batch_size, progress=False)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = one_by_one(model, tokenizer, examples, args.max_new_tokens)
    single_s = time.perf_counter() - start
    differ = sum(a != b for a, b in zip(batched, single))
    table = (f"device: {device}, torch threads: {torch.get_num_threads()}, {len(examples)} NL-RX-SYNTH test rows, "
             f"SmolLM2-135M-Instruct {'bf16' if args.bf16 else 'fp32'}, greedy, ≤ {args.max_new_tokens} new tokens\n\n"
             "| generation | seconds | predictions / s | × per-example |\n|---|---|---|---|\n"
             f"| per-example `generate` (the official loop) | {single_s:.1f} | {len(examples) / single_s:.2f} | 1.00 |\n"
             f"| lmjepa batched, batch {args.batch_size} | {batched_s:.1f} | {len(examples) / batched_s:.2f} | "
             f"{single_s / batched_s:.2f} |\n\n"
             f"Predictions that differ between the two: {differ} of {len(examples)}.\n")
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
