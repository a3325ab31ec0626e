"""CPU vs CUDA parity of lmjepa training: a GPU check that can fail.

The same small run — a from-scratch model of SmolLM2's architecture (2 layers × 128, SmolLM2's tokenizer,
seed 82), real NL-RX-SYNTH rows, batch 4 × 2 accumulation steps, fp32 — is trained for a few steps with
``lmjepa train`` once with the GPU hidden (``CUDA_VISIBLE_DEVICES=``) and once on the GPU, for every view
mode and auxiliary family, then evaluated (greedy generation). Both processes run the same code and
libraries, so their logged per-step losses (``metrics.json`` ``log_history``) must agree up to float
rounding: the check fails if any step's loss differs by more than ``--tol`` (relative). It also trains
every variant in bf16 on the GPU and reports its loss gap to fp32 (expected ≈ 1 %; must be finite).

    python benchmarks/cuda_parity.py --model FOLDER --data-dir DIR --paraphrase FILE.jsonl [--out FILE.md]

``--model`` is any folder with SmolLM2's ``config.json`` and tokenizer (no weights are read).
Exit status 1 when a loss disagrees beyond ``--tol`` or is not finite; the table says which.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

STEPS = 8
VARIANTS = {  # variant: overrides of the base run (LLM-JEPA k = 1, chat views, separate): every view mode, the audit's families
    "ntp": {"jepa.lbd": 0.0},
    "llm-jepa": {},
    "llm-jepa-content": {"jepa.view_format": "content"},
    "llm-jepa-packed": {"jepa.views": "packed"},
    "llm-jepa-shared-prefix-content": {"jepa.views": "shared_prefix", "jepa.view_format": "content"},
    "llm-jepa-k2-dropout": {"jepa.predictors": 2, "jepa.dropout": 0.5},
    "llm-jepa-official": {"data.train_prompt": True, "data.train_eos": False, "jepa.accumulation_scaling": "official"},
    "llm-jepa-ema": {"objectives": [{"name": "llm-jepa", "weight": 1.0, "target": "ema"}]},
    "stp": {"objectives": [{"name": "stp", "weight": 0.02}]},
    "sigreg": {"objectives": [{"name": "sigreg", "weight": 0.01}]},
    "fisher-jepa": {"objectives": [{"name": "fisher-jepa", "weight": 1.0}]},
    "decoder-jepa": {"objectives": [{"name": "decoder-jepa", "weight": 1.0}]},
}


def base_config(model: str, out: Path, variants: dict = VARIANTS) -> dict:
    return {
        "name": "cuda-parity", "task": "nlrx-synth", "output_dir": str(out),
        "model": {"name": model, "from_scratch": True,
                  "config_overrides": {"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 384,
                                       "num_attention_heads": 4, "num_key_value_heads": 2}},
        "data": {"max_train_examples": 4 * 2 * STEPS, "max_eval_examples": 16},
        "jepa": {"lbd": 1.0, "predictors": 1},
        "train": {"seed": 82, "learning_rate": 1.0e-3, "num_train_epochs": 1, "batch_size": 4,
                  "gradient_accumulation_steps": 2, "warmup_ratio": 0.0, "logging_steps": 1, "save_steps": 1000},
        "eval": {"max_new_tokens": 16, "batch_size": 16},
        "variants": variants,
    }


def multiview_config(model: str, out: Path, paraphrase: str) -> dict:
    config = base_config(model, out)
    config.update(name="cuda-parity-multiview", task="paraphrase-nlrx", eval={"skip": True},
                  variants={"multiview-k2": {}})
    config["data"] = {"train_file": str(Path(paraphrase).resolve()), "max_train_examples": 4 * 2 * STEPS}
    config["jepa"] = {"lbd": 0.5, "predictors": 2, "views": "multiview"}
    return config


def train(config: dict, folder: Path, env: dict) -> None:
    """``lmjepa train`` on every variant of ``config`` in one process; if that process fails, each variant
    without ``metrics.json`` again alone (finished ones are kept), so one crashing variant loses only itself.
    The console output goes to ``folder/<name>.log``; a failure prints its last lines."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code = "import sys; from lmjepa.cli.main import main; sys.exit(main(['train', *sys.argv[1:]]))"
    log = folder / f"{config['name']}.log"

    def run(*extra: str) -> bool:
        with log.open("a") as out:
            done = subprocess.run([sys.executable, "-c", code, str(path), *extra], env={**os.environ, **env},
                                  stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            print(f"FAILED ({folder.name}, {config['name']} {' '.join(extra)}):\n" +
                  "\n".join(log.read_text().splitlines()[-15:]), flush=True)
        return done.returncode == 0

    if not run():
        for name in config["variants"]:
            if not (Path(config["output_dir"]) / name / "metrics.json").exists():
                run("--variant", name)


def losses(run: Path) -> list[float]:
    """The logged per-step training losses of a finished run ([] if it did not finish)."""
    if not (run / "metrics.json").exists():
        return []
    history = json.loads((run / "metrics.json").read_text())["log_history"]
    return [row["loss"] for row in history if "loss" in row]


def predictions(run: Path) -> list[str]:
    file = run / "predictions.jsonl"
    return [json.loads(line).get("prediction", "") for line in file.read_text().splitlines()] if file.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--paraphrase", required=True, help="a multi-view JSONL ({'views': [...]}) for the multiview run")
    parser.add_argument("--tol", type=float, default=2e-3, help="largest relative loss difference, CPU vs CUDA fp32")
    parser.add_argument("--out")
    parser.add_argument("--dry-run", action="store_true", help="no GPU: run all three on the CPU (tests the script only)")
    parser.add_argument("--variants", help="comma-separated subset of the variants (default: all)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.dry_run:
        sys.exit("cuda_parity.py needs a visible GPU (or --dry-run)")
    root = Path(tempfile.mkdtemp(prefix="lmjepa-parity-"))
    env = {"LMJEPA_DATA_DIR": str(Path(args.data_dir).resolve()), "NVIDIA_TF32_OVERRIDE": "0"}
    runs = {"cpu": {"CUDA_VISIBLE_DEVICES": ""}, "cuda": {}, "cuda-bf16": {}}
    chosen = {name: VARIANTS[name] for name in (args.variants.split(",") if args.variants else VARIANTS)}
    for label, extra in runs.items():
        for config in (base_config(args.model, root / label / "cuda-parity", chosen),
                       multiview_config(args.model, root / label / "cuda-parity-multiview", args.paraphrase)):
            if label == "cuda-bf16":
                config["train"]["precision"] = "bf16"
            train(config, root / label, {**env, **extra})
    rows, failed = [], False
    folders = [Path("cuda-parity") / name for name in chosen] + [Path("cuda-parity-multiview") / "multiview-k2"]
    for folder in folders:
        name = folder.name
        cpu, cuda, bf16 = (losses(root / label / folder) for label in runs)
        finite = all(math.isfinite(x) for x in cpu + cuda + bf16) and len(cpu) == len(cuda) == len(bf16) > 0
        fp32_gap = max(abs(a - b) / max(abs(a), 1e-8) for a, b in zip(cpu, cuda)) if finite else float("nan")
        bf16_gap = max(abs(a - b) / max(abs(a), 1e-8) for a, b in zip(cpu, bf16)) if finite else float("nan")
        ok = finite and fp32_gap <= args.tol
        failed |= not ok
        p_cpu, p_cuda = predictions(root / "cpu" / folder), predictions(root / "cuda" / folder)
        same = f"{sum(a == b for a, b in zip(p_cpu, p_cuda))}/{len(p_cpu)}" if p_cpu else "—"
        first_last = f"{cpu[0]:.4f} → {cpu[-1]:.4f}" if cpu else "did not finish"
        rows.append(f"| {name} | {len(cpu)}/{len(cuda)}/{len(bf16)} | {first_last} | {fp32_gap:.1e} | {bf16_gap:.1e} | {same} "
                    f"| {'ok' if ok else 'FAIL'} |")
    table = "\n".join([
        f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'DRY RUN, CPU only'}, torch {torch.__version__}; {STEPS} optimizer steps (batch 4 × 2 accumulation), "
        f"from-scratch SmolLM2 architecture 2 × 128, NL-RX-SYNTH; tolerance {args.tol:g} relative", "",
        "| variant | logged steps CPU/CUDA/bf16 | CPU loss, first → last | max rel. gap CPU vs CUDA fp32 | max rel. gap CPU fp32 vs "
        "CUDA bf16 | identical greedy predictions CPU/CUDA | |", "|---|---|---|---|---|---|---|", *rows]) + "\n"
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
