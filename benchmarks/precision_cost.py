"""Step cost of ``train.precision: bf16`` (autocast mixed precision) against fp32, on this machine's CPU.

The Trainer's ``bf16=True`` runs the forward (NTP loss and the JEPA term) under ``torch.autocast`` in
bfloat16 and keeps fp32 weights, gradients and optimizer state; this benchmark times exactly that:
``compute_loss`` under autocast, ``backward`` outside it. Models: SmolLM2-135M-Instruct (the fine-tuning
runs) and the from-scratch 4-layer × 256 model of ``configs/llm-jepa-pretrain/scratch-nlrx.yaml``; NTP and
LLM-JEPA (chat views, shared prefix, k = 1) each; real NL-RX-SYNTH batches of 8. fp32 and bf16 run
interleaved, round by round, and the ratio reported is the median over rounds of fp32 time / bf16 time.
Whether bf16 pays depends on the CPU (it needs native bf16 matrix units: AVX512-BF16 or AMX).

    python benchmarks/precision_cost.py [--rounds 3] [--steps 3] [--data-dir ../shared/data] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import step_cost  # noqa: E402  (the same model, batches and trainer set-up as the view-mode benchmark)

from lmjepa.models.loading import load_model, resolve_model_path  # noqa: E402

SCRATCH = {"num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 768, "num_attention_heads": 4,
           "num_key_value_heads": 2}  # configs/llm-jepa-pretrain/scratch-nlrx.yaml
OBJECTIVES = [("NTP", ("ntp", 0, 0.0)), ("LLM-JEPA k=1", (step_cost.PREFIX, 1, 0.0))]


def timed_step(trainer, model, batch, device: str, bf16: bool) -> float:
    """Seconds for one forward (under autocast when ``bf16``) and backward."""
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    step_cost.sync(device)
    start = time.perf_counter()
    inputs = {key: value.to(device) for key, value in batch.items()}
    with autocast:
        loss = trainer.compute_loss(model, inputs)
    loss.backward()
    model.zero_grad(set_to_none=True)
    step_cost.sync(device)
    return time.perf_counter() - start


def measure(models: dict, batches: dict, device: str, rounds: int, steps: int) -> dict:
    """{(model, objective): [fp32 / bf16 per round]}, every configuration interleaved in each round."""
    trainers = {(m, o): step_cost.make_trainer(models[m], config, "/tmp/lmjepa-bench")
                for m in models for o, config in OBJECTIVES}
    for (m, o), trainer in trainers.items():  # warm-up, both precisions
        for bf16 in (False, True):
            timed_step(trainer, models[m], batches[o][0], device, bf16)
    ratios = {key: [] for key in trainers}
    for r in range(rounds):
        for (m, o), trainer in trainers.items():
            mean = {}
            for bf16 in (False, True):
                mean[bf16] = statistics.mean(timed_step(trainer, models[m], batches[o][i % len(batches[o])], device,
                                                        bf16) for i in range(steps))
            ratios[(m, o)].append(mean[False] / mean[True])
            print(f"round {r + 1}/{rounds} {m:28s} {o:14s} fp32 {mean[False]:.3f} s/step  bf16 {mean[True]:.3f} "
                  f"s/step  ×{ratios[(m, o)][-1]:.2f}", flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per configuration and precision per round")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", help="also write the Markdown table here")
    args = parser.parse_args()
    torch.manual_seed(step_cost.SEED)
    model, tokenizer, all_batches, device = step_cost.setup(args.data_dir, n_batches=args.steps)
    scratch = load_model(resolve_model_path("smollm2-135m-instruct"), tokenizer, from_scratch=True,
                         config_overrides=SCRATCH, seed=step_cost.SEED).to(device)
    models = {"SmolLM2-135M (fine-tuning)": model, "from scratch, 4 × 256": scratch}
    batches = {o: all_batches[config] for o, config in OBJECTIVES}
    ratios = measure(models, batches, device, args.rounds, args.steps)
    cpu = torch.backends.cpu.get_cpu_capability() if device == "cpu" else torch.cuda.get_device_name()
    lines = [f"fp32 / bf16-autocast step time (forward + backward, batch {step_cost.BATCH}, {device}: {cpu}, "
             f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds × {args.steps} steps)",
             "", "| model | objective | fp32 ÷ bf16 |", "|---|---|---|"]
    lines += [f"| {m} | {o} | {statistics.median(r):.2f}× |" for (m, o), r in ratios.items()]
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
