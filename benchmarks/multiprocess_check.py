"""Same loss curve with 1 process and with N processes at the same global batch (Accelerate, CPU/gloo).

Trains a tiny Llama (built in code) with LLM-JEPA on real NL-RX rows and writes the logged curve
(``loss``, ``grad_norm``, ``jepa_loss`` per step) as JSON. lmjepa writes no process-group code:
the distributed run comes entirely from ``accelerate launch``.

    python benchmarks/multiprocess_check.py --global-batch 8 --out one.json
    accelerate launch --multi_gpu --num_processes 2 benchmarks/multiprocess_check.py --global-batch 8 --out two.json

On a machine without GPUs the ``--multi_gpu`` launcher (torchrun) starts CPU processes with the gloo
backend; ``accelerate launch --cpu`` would start a single process unless MPI is set up.
    python benchmarks/multiprocess_check.py --compare one.json two.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

from lmjepa.training.config import JEPAConfig
from lmjepa.data.jsonl import read_examples
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import encode_dataset
from lmjepa.io import atomic_write_json
from lmjepa.models.loading import add_predictor_tokens, load_tokenizer, resolve_model_path
from lmjepa.training.trainer import JEPATrainer

TOLERANCE = 1e-4  # relative, per logged value


def train(args) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.global_batch % world:
        sys.exit(f"global batch {args.global_batch} is not divisible by {world} processes")
    tokenizer = load_tokenizer(resolve_model_path("smollm2-135m-instruct"))
    predictor_ids = add_predictor_tokens(tokenizer, 1)
    examples = read_examples(Path(args.data_dir) / "llm-jepa" / "synth_train.jsonl", args.global_batch * args.steps)
    features, _ = encode_dataset(examples, tokenizer, predictor_ids)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.global_batch // world, max_steps=args.steps,
        learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=1, report_to=[], save_strategy="no",
        remove_unused_columns=False, seed=0, disable_tqdm=True, use_cpu=True,
    )
    trainer = JEPATrainer(model=model, args=training_args, train_dataset=features,
                          data_collator=JEPACollator(tokenizer.pad_token_id, args.views, 1),
                          jepa=JEPAConfig(lbd=1.0, predictors=1, views=args.views, monitor=False))
    trainer.train()
    if trainer.is_world_process_zero():
        curve = [{k: row[k] for k in ("step", "loss", "grad_norm", "jepa_loss") if k in row}
                 for row in trainer.state.log_history if "loss" in row]
        atomic_write_json(args.out, {"processes": world, "curve": curve})
    # Accelerate's own teardown: without it a rank can abort at exit ("terminate called without an active
    # exception", seen once in ~12 two-process runs under load) after its work is done.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


def compare(one: str, two: str) -> int:
    a, b = json.loads(Path(one).read_text()), json.loads(Path(two).read_text())
    worst = 0.0
    print(f"step | {a['processes']} process(es): loss, grad_norm | {b['processes']} process(es): loss, grad_norm")
    for x, y in zip(a["curve"], b["curve"]):
        print(f"{x['step']:4d} | {x['loss']:.6f}, {x['grad_norm']:.6f} | {y['loss']:.6f}, {y['grad_norm']:.6f}")
        for key in ("loss", "grad_norm", "jepa_loss"):
            worst = max(worst, abs(x[key] - y[key]) / max(abs(x[key]), 1e-12))
    same = len(a["curve"]) == len(b["curve"]) > 0 and worst <= TOLERANCE
    print(f"largest relative difference {worst:.2e} (tolerance {TOLERANCE:.0e}): {'SAME' if same else 'DIFFERENT'}")
    return 0 if same else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--views", default="separate")
    parser.add_argument("--data-dir", default=os.environ.get("LMJEPA_DATA_DIR", "../shared/data"))
    parser.add_argument("--out")
    parser.add_argument("--compare", nargs=2, metavar=("ONE", "TWO"))
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    train(args)


if __name__ == "__main__":
    main()
