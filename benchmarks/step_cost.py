"""Step cost of LLM-JEPA view modes relative to plain NTP fine-tuning (forward + backward).

SmolLM2-135M-Instruct on real NL-RX-SYNTH batches (batch 8). Configurations run interleaved, round
by round, so each ratio compares times measured under the same machine conditions; the ratio
reported is the median over rounds of (config mean step time) / (NTP mean step time in that round).
Loss dropout follows the real schedule (``jepa_dropped(seed, step, α)``) over the same step indices
for every configuration; the realised drop share is printed beside it. Peak memory is measured per
configuration in a fresh subprocess (CPU: peak RSS growth over one step; CUDA: max allocated).

    python benchmarks/step_cost.py [--rounds 3] [--steps 4] [--data-dir ../shared/data] [--out FILE.md]
    python benchmarks/step_cost.py --aux [--rounds 2] [--steps 3]   # the auxiliary terms (objectives:)

``--aux`` times the registered auxiliary terms the same way (interleaved rounds, median ratio to NTP;
``separate`` views, k = 1 for the terms that need views), without the memory column.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import TrainingArguments

from lmjepa.training.config import JEPAConfig
from lmjepa.data.jsonl import read_examples
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import encode_dataset
from lmjepa.models.loading import add_predictor_tokens, load_model, load_tokenizer, resolve_model_path
from lmjepa.objectives.jepa import jepa_dropped
from lmjepa.training.trainer import JEPATrainer

BATCH, SEED = 8, 82
DTYPE = torch.float32  # --bf16: torch.bfloat16 (the GPU check)
VIEW_FORMAT = "chat"  # --view-format: the views (jepa.view_format); chat = the official code's
MODEL, FROM_SCRATCH = "smollm2-135m-instruct", False  # --model, --from-scratch (the architecture, random weights)
PREFIX = "separate+prefix"  # separate views whose common template prefix runs once (jepa.shared_view_prefix)
CONFIGS = [("ntp", 0, 0.0)] + [(m, k, a) for m in ("separate", PREFIX, "packed", "shared_prefix") for k in (0, 1)
                               for a in (0.0, 0.5, 0.75)]


def model_label() -> str:
    name = "SmolLM2-135M-Instruct" if MODEL == "smollm2-135m-instruct" else MODEL
    return f"{name} (architecture, random weights)" if FROM_SCRATCH else name


def views_of(mode: str) -> str:
    """The ``jepa.views`` value of a benchmark mode."""
    return "separate" if mode in ("ntp", PREFIX) else mode


def name(config) -> str:
    mode, k, alpha = config
    return "NTP only" if mode == "ntp" else f"{mode} k={k} α={alpha}"


def load(data_dir: str, rows: int):
    """``MODEL`` (k = 1 predictor token added) on the device, and ``rows`` NL-RX-SYNTH rows."""
    path = resolve_model_path(MODEL)
    tokenizer = load_tokenizer(path)
    predictor_ids = add_predictor_tokens(tokenizer, 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(path, tokenizer, from_scratch=FROM_SCRATCH).to(device=device, dtype=DTYPE)
    examples = read_examples(Path(data_dir) / "llm-jepa" / "synth_train.jsonl", rows)
    return model, tokenizer, predictor_ids, device, examples


def setup(data_dir: str, n_batches: int):
    model, tokenizer, predictor_ids, device, examples = load(data_dir, BATCH * n_batches)
    features = {k: encode_dataset(examples, tokenizer, predictor_ids[:k], view_format=VIEW_FORMAT)[0] for k in (0, 1)}
    batches = {}
    for config in CONFIGS:
        mode, k, _ = config
        collate = JEPACollator(tokenizer.pad_token_id, views_of(mode), k, share_prefix=mode == PREFIX)
        batches[config] = [collate(features[k][i : i + BATCH]) for i in range(0, len(features[k]), BATCH)]
    return model, tokenizer, batches, device


def make_trainer(model, config, tmp: str) -> JEPATrainer:
    mode, k, alpha = config
    jepa = JEPAConfig(lbd=0.0 if mode == "ntp" else 1.0, views=views_of(mode),
                      predictors=k, dropout=alpha, monitor=False)
    args = TrainingArguments(output_dir=tmp, report_to=[], remove_unused_columns=False, seed=SEED, disable_tqdm=True)
    trainer = JEPATrainer(model=model, args=args, jepa=jepa)
    model.train()
    return trainer


def step(trainer, model, batch, global_step: int, device: str) -> None:
    trainer.state.global_step = global_step
    inputs = {key: value.to(device) for key, value in batch.items()}
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    model.zero_grad(set_to_none=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def padding_efficiency(batches: list[dict], mode: str) -> tuple[float, float]:
    """(tokens computed / real tokens, the same with every row padded to 512 as the reference does:
    3 rows of 512 per example for separate views, 2 for its block-mask path, 1 for NTP)."""
    computed = real = fixed = 0
    for b in batches:
        real_full = int(b["attention_mask"].sum())
        if mode == "ntp":
            computed += b["input_ids"].numel(); real += real_full; fixed += 512 * b["input_ids"].shape[0]
        elif views_of(mode) == "separate":
            shared = int(b.get("view_prefix_len", 0)) * (b["view_input_ids"].shape[0] - 1)  # computed once
            computed += b["input_ids"].numel() + b["view_input_ids"].numel() - shared
            real += real_full + int(b["view_attention_mask"].sum()) - shared; fixed += 512 * 3 * b["input_ids"].shape[0]
        else:  # packed and shared_prefix: one row per example; real positions attend to something
            computed += b["pack_input_ids"].numel()
            real += int(b["pack_allowed"].any(-1).sum()); fixed += 512 * 2 * b["input_ids"].shape[0]
    return computed / real, fixed / real


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_memory(config, data_dir: str) -> float:
    """Peak memory (MiB) that one step of ``config`` adds on top of the loaded model (this process).

    CPU: after a warm-up step, the kernel's peak-RSS counter is reset (``/proc/self/clear_refs``)
    and read back (VmHWM) after the measured step. CUDA: ``max_memory_allocated`` over the step.
    """
    model, _, batches, device = setup(data_dir, 1)
    trainer = make_trainer(model, config, "/tmp/lmjepa-bench")
    never_dropped = next(s for s in range(1000) if not jepa_dropped(SEED, s, config[2]))
    step(trainer, model, batches[config][0], never_dropped, device)  # warm-up
    gc.collect()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(trainer, model, batches[config][0], never_dropped, device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    base = _status_kib("VmRSS")
    step(trainer, model, batches[config][0], never_dropped, device)
    return (_status_kib("VmHWM") - base) / 1024


def time_configs(model, batches, device: str, rounds: int, steps: int) -> dict:
    """Mean step time of every configuration in each round, configurations interleaved per round."""
    trainers = {config: make_trainer(model, config, "/tmp/lmjepa-bench") for config in CONFIGS}
    for config in CONFIGS:  # warm-up
        step(trainers[config], model, batches[config][0], 10**6 + 1, device)
    times = {config: [] for config in CONFIGS}
    for round_index in range(rounds):
        for config in CONFIGS:
            indices = [round_index * steps + i for i in range(steps)]
            sync(device)
            start = time.perf_counter()
            for i, global_step in enumerate(indices):
                step(trainers[config], model, batches[config][i % len(batches[config])], global_step, device)
            sync(device)
            times[config].append((time.perf_counter() - start) / steps)
            print(f"round {round_index + 1}/{rounds} {name(config):28s} {times[config][-1]:.3f} s/step", flush=True)
    return times


AUX_CONFIGS = [
    ("NTP only", []),
    ("stp (random_span)", [{"name": "stp", "weight": 0.02}]),
    ("curvature", [{"name": "curvature", "weight": 0.1}]),
    ("sigreg (tokens, 256 slices)", [{"name": "sigreg", "weight": 0.01}]),
    ("vicreg (tokens)", [{"name": "vicreg", "weight": 0.1}]),
    ("uniformity (tokens)", [{"name": "uniformity", "weight": 0.1}]),
    ("llm-jepa, target live", [{"name": "llm-jepa", "weight": 1.0}]),
    ("llm-jepa, target stop-grad", [{"name": "llm-jepa", "weight": 1.0, "target": "stop-grad"}]),
    ("llm-jepa, target ema", [{"name": "llm-jepa", "weight": 1.0, "target": "ema"}]),
    ("llm-jepa, predictor mlp", [{"name": "llm-jepa", "weight": 1.0, "predictor": "mlp"}]),
    ("fisher-jepa", [{"name": "fisher-jepa", "weight": 1.0}]),
    ("decoder-jepa", [{"name": "decoder-jepa", "weight": 1.0}]),
    ("llm-jepa + sigreg", [{"name": "llm-jepa", "weight": 1.0}, {"name": "sigreg", "weight": 0.01}]),
    ("Code view alone, forward only (no grad)", None),  # the yardstick of target: ema
]


def time_auxiliaries(data_dir: str, rounds: int, steps: int) -> str:
    """Markdown table: s/step and the median ratio to NTP of every ``AUX_CONFIGS`` row, interleaved."""
    from lmjepa.objectives import Objective

    torch.manual_seed(0)
    model, tokenizer, predictor_ids, device, examples = load(data_dir, BATCH * steps)
    features = encode_dataset(examples, tokenizer, predictor_ids)[0]
    collate = JEPACollator(tokenizer.pad_token_id, "separate", 1, share_prefix=True)  # the default config
    batches = [collate(features[i : i + BATCH]) for i in range(0, len(features), BATCH)]
    args = TrainingArguments(output_dir="/tmp/lmjepa-bench", report_to=[], remove_unused_columns=False, seed=SEED,
                             disable_tqdm=True)
    trainers = {}
    for label, specs in AUX_CONFIGS:
        if specs is not None:
            objective = Objective(specs or [{"name": "llm-jepa", "weight": 0.0}], 1.0, model.config.hidden_size)
            objective.to(device)  # an MLP predictor's weights (training attaches it to the model, which moves it)
            trainers[label] = JEPATrainer(model=model, args=args, jepa=JEPAConfig(monitor=False), objective=objective)

    def run(label, batch):
        inputs = {key: value.to(device) for key, value in batch.items()}
        if label not in trainers:  # the Code rows of the batch, one forward without a graph
            half = inputs["view_input_ids"].shape[0] // 2
            with torch.no_grad():
                model(input_ids=inputs["view_input_ids"][half:], attention_mask=inputs["view_attention_mask"][half:],
                      output_hidden_states=True, logits_to_keep=1)
            return
        trainers[label].compute_loss(model, inputs).backward()
        if trainers[label].ema is not None:
            trainers[label].ema.update(model, 1, 100)
        model.zero_grad(set_to_none=True)

    model.train()
    for label, _ in AUX_CONFIGS:
        run(label, batches[0])  # warm-up
    times = {label: [] for label, _ in AUX_CONFIGS}
    for round_index in range(rounds):
        for label, _ in AUX_CONFIGS:
            sync(device)
            start = time.perf_counter()
            for batch in batches:
                run(label, batch)
            sync(device)
            times[label].append((time.perf_counter() - start) / len(batches))
            print(f"round {round_index + 1}/{rounds} {label:40s} {times[label][-1]:.3f} s/step", flush=True)
    ntp = times["NTP only"]
    lines = [f"device: {device}, torch threads: {torch.get_num_threads()}, batch {BATCH}, {rounds} rounds × "
             f"{len(batches)} steps, {model_label()} {DTYPE}, NL-RX-SYNTH, separate views, k = 1", "",
             "| configuration | s/step | × NTP (median of rounds) |", "|---|---|---|"]
    for label, _ in AUX_CONFIGS:
        ratio = statistics.median(t / n for t, n in zip(times[label], ntp))
        lines.append(f"| {label} | {statistics.median(times[label]):.2f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="steps per configuration per round")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", help="also write the Markdown table here")
    parser.add_argument("--times", help="JSON of per-round step times: reused if it exists, else written")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--aux", action="store_true", help="time the auxiliary terms instead of the view modes")
    parser.add_argument("--bf16", action="store_true", help="the model in bfloat16 (a GPU check)")
    parser.add_argument("--view-format", choices=["content", "chat"], default="chat",
                        help="the views' format (jepa.view_format); chat = the official code's")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model name or folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="random weights of --model's architecture (timing only: needs no weights file)")
    parser.add_argument("--only", help="the configurations to time besides NTP, e.g. 'separate:1:0.0,packed:1:0.0'")
    args = parser.parse_args()
    global DTYPE, VIEW_FORMAT, CONFIGS, MODEL, FROM_SCRATCH
    VIEW_FORMAT, MODEL, FROM_SCRATCH = args.view_format, args.model, args.from_scratch
    if args.only:
        chosen = [(m, int(k), float(a)) for m, k, a in (item.split(":") for item in args.only.split(","))]
        CONFIGS = [CONFIGS[0]] + [c for c in CONFIGS[1:] if c in chosen]
    if args.bf16:
        DTYPE = torch.bfloat16
    if args.aux:
        table = time_auxiliaries(args.data_dir, args.rounds, args.steps)
        print("\n" + table)
        if args.out:
            Path(args.out).write_text(table)
        return
    if args.memory_of:
        mode, k, alpha = json.loads(args.memory_of)
        print(json.dumps(measure_memory((mode, k, alpha), args.data_dir)))
        return

    torch.manual_seed(0)
    model, tokenizer, batches, device = setup(args.data_dir, args.steps)
    times_file = Path(args.times or "/tmp/lmjepa-step-cost-times.json")
    if args.times and times_file.exists():  # reuse a finished timing phase (e.g. after a crash below)
        saved = json.loads(times_file.read_text())
        times = {config: saved[name(config)] for config in CONFIGS}
        args.rounds = len(times[CONFIGS[0]])
    else:
        times = time_configs(model, batches, device, args.rounds, args.steps)
    times_file.write_text(json.dumps({name(config): times[config] for config in CONFIGS}))
    memory = {}
    for config in CONFIGS:
        result = subprocess.run([sys.executable, __file__, "--memory-of", json.dumps(config), "--data-dir", args.data_dir,
                                 "--view-format", VIEW_FORMAT, "--model", MODEL,
                                *(["--from-scratch"] if FROM_SCRATCH else []), *(["--bf16"] if args.bf16 else []),
                                *(["--only", args.only] if args.only else [])],
                                capture_output=True, text=True, check=True)
        memory[config] = json.loads(result.stdout.strip().splitlines()[-1])

    ntp = CONFIGS[0]
    all_steps = range(args.rounds * args.steps)
    lines = [f"device: {device}, torch threads: {torch.get_num_threads()}, batch {BATCH}, "
             f"{args.rounds} rounds × {args.steps} steps, {model_label()} {DTYPE}, NL-RX-SYNTH, "
             f"{VIEW_FORMAT} views",
             "", "| configuration | s/step | × NTP (median of rounds) | dropped share | peak mem MiB | × NTP mem "
             "| tokens computed / real | same, 512-padded |", "|---|---|---|---|---|---|---|---|"]
    for config in CONFIGS:
        ratio = statistics.median(t / n for t, n in zip(times[config], times[ntp]))
        dropped = sum(jepa_dropped(SEED, s, config[2]) for s in all_steps) / len(all_steps)
        ours, fixed = padding_efficiency(batches[config], config[0])
        lines.append(f"| {name(config)} | {statistics.median(times[config]):.2f} | {ratio:.2f} | {dropped:.2f} | "
                     f"{memory[config]:.0f} | {memory[config] / memory[ntp]:.2f} | {ours:.2f} | {fixed:.2f} |")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
