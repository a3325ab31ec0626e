"""Predict-and-Reconstruct pretraining under several processes (Accelerate, CPU/gloo): after training,
every process must hold the same online encoder *and the same EMA target encoder* — the target is
updated by a callback once per optimizer step on each process, never communicated, so any drift
(an update skipped or doubled on one rank, a rank stepping on unsynchronised gradients) shows here.

    accelerate launch --multi_gpu --num_processes 2 benchmarks/pretrain_multiprocess_check.py --mode fixed
    accelerate launch --multi_gpu --num_processes 2 benchmarks/pretrain_multiprocess_check.py --mode mlm_only

Exit status 0 and "same on every process" when the check passes. A tiny encoder (built in code) on
real sentences from the data folder; lmjepa writes no process-group code: Accelerate starts the processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch
from accelerate.utils import gather_object

from lmjepa.training.config import TrainConfig
from lmjepa.training.pretrain_config import EncoderConfig, HybridConfig, PretrainConfig
from lmjepa.data.text import read_texts
from lmjepa.models.predict_reconstruct import PredictReconstruct
from lmjepa.data.pretrain_collator import HybridCollator
from lmjepa.models.loading import load_tokenizer
from lmjepa.training.pretrain import PretrainTrainer, build_model
from lmjepa.training.run import training_arguments


def checksums(model: PredictReconstruct) -> dict[str, list[float]]:
    """Per-tensor sums of the online and target encoders' parameters (float64)."""
    return {name: [float(p.detach().double().sum()) for p in part.parameters()]
            for name, part in (("online", model.encoder), ("target", model.target_encoder)) if part is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="fixed", choices=["fixed", "schedule", "learnable", "mlm_only"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--accumulation", type=int, default=2)
    parser.add_argument("--data-dir", default=os.environ.get("LMJEPA_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    config = PretrainConfig(
        output_dir=tempfile.mkdtemp(), text=[os.path.join(args.data_dir, "glue", "SST-2", "train_full.tsv")], data_dir=args.data_dir, max_texts=512,
        model=EncoderConfig(hidden_size=32, num_layers=2, num_heads=2, max_length=32, predictor_layers=1,
                            predictor_hidden=16),
        objective=HybridConfig(lambda_mode=args.mode, monitor_every=2),
        train=TrainConfig(seed=0, max_steps=args.steps, batch_size=8, gradient_accumulation_steps=args.accumulation,
                          learning_rate=1e-3, logging_steps=1, save_steps=1000, extra={"disable_tqdm": True}),
    )
    tokenizer = load_tokenizer(config.model.tokenizer, chat_template=False)
    texts = read_texts(config.text[0], config.data_dir)[: config.max_texts]
    features = [{"input_ids": ids} for ids in tokenizer(texts, truncation=True, max_length=32)["input_ids"]]
    model = build_model(config, len(tokenizer))
    training_args = training_arguments(config, config.output_dir)
    training_args.remove_unused_columns = False
    trainer = PretrainTrainer(model=model, args=training_args, train_dataset=features,
                              data_collator=HybridCollator(tokenizer, config.objective, config.train.seed), ema=(0.9, 1.0))
    initial = checksums(model)
    trainer.train()
    final = checksums(trainer.accelerator.unwrap_model(trainer.model))
    everyone = gather_object([final])
    if not trainer.is_world_process_zero():
        return 0
    world = len(everyone)
    drift = {part: max(abs(a - b) for rank in everyone for a, b in zip(rank[part], everyone[0][part]))
             for part in final}
    moved = {part: max(abs(a - b) for a, b in zip(final[part], initial[part])) for part in final}
    print(f"{world} processes, mode {args.mode}, {args.steps} steps × {args.accumulation} micro-batches")
    for part in final:
        print(f"  {part} encoder: largest checksum difference between processes {drift[part]:.3g}; "
              f"moved by training {moved[part]:.3g}")
    ok = all(d == 0.0 for d in drift.values()) and all(m > 0 for m in moved.values())
    print("same on every process" if ok else "MISMATCH (or a part never moved)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
