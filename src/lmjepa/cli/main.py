"""``lmjepa`` command line: the parser; each subcommand runs one function of ``cli/commands.py``.

    lmjepa train CONFIG.yaml [--variant NAME ...] [--set section.key=value ...] [--output-dir DIR] [--force]
    lmjepa evaluate RUN_DIR [--set ...] [--out DIR]          # a trained run's model/
    lmjepa evaluate CONFIG.yaml --out DIR [--set ...]        # the config's model as is (zero-shot)
    lmjepa evaluate RUN_DIR --rescore                        # score saved predictions again, no generation
    lmjepa table RUN_DIR [RUN_DIR ...] [--out table.md]      # side-by-side metrics
    lmjepa compare RESULTS.jsonl --baseline CELL [--metric M ...] [--correction holm|bonferroni|bh] [--out DIR]
    lmjepa compare fp32=A.jsonl bf16=B.jsonl --baseline fp32/ntp --cells fp32/ntp,bf16/ntp  # across stores
    lmjepa compare --mcnemar RUN_A RUN_B                     # per-example exact-match correctness
    lmjepa compare RESULTS.jsonl --interaction BASE_A TREATED_A BASE_B TREATED_B [--conditions A,B]  # seed-paired 2 × 2
    lmjepa compare ... --predictions PREDICTIONS.yaml        # ... with pre-registered predictions checked
    lmjepa sweep SPEC.yaml [--concurrency N] [--launcher local|ray|slurm] [--restore COPY]  # cells × seeds, resumable
    lmjepa sweep SPEC.yaml --status                          # what is done, in flight and left, and how long
    lmjepa audit SPEC.yaml [--restore COPY] [--report-only]  # factors × auxiliaries, corrected, geometry coupling
    lmjepa geometry RUN_DIR [--rows 200]                     # the audit's geometry of one trained model
    lmjepa pretrain CONFIG.yaml [--variant NAME ...]         # Predict-and-Reconstruct encoder (hybrid / MLM-only)
    lmjepa probe RUN_DIR [RUN_DIR ...] [--out DIR]           # frozen-encoder GLUE probes + geometry table
    lmjepa tasks                                             # the registered tasks
    lmjepa objectives                                        # the registered auxiliary terms
    lmjepa inspect CONFIG.yaml [--rows N] [--json]           # what training sees: views, labels, Enc tokens
    lmjepa build-data gsm8k [--out FILE]                     # LLM-JEPA-format training file from raw data
    lmjepa build-data nlrx-splits [--seed S] [--out DIR]     # OOD splits of NL-RX (dedup, paraphrase, depth, ...)
    lmjepa build-data parallel --src F --targ F --system S --out F.jsonl   # bring your own regex data
    lmjepa build-data paraphrase-nlrx [--with-regex] / paraphrase-mrpc     # multi-view {"views": [...]} data
    lmjepa analyze [SPEC.yaml] --model LABEL=MODEL ... [--data nlrx-synth] [--out DIR]  # representation geometry

Only lmjepa's own errors (``lmjepa.errors``: bad config, bad data, unusable run folder, missing model)
become a one-line message with exit status 2; a NaN loss stops with status 3; anything else is a
bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from pathlib import Path

from ..config import find_config
from ..errors import LmjepaError
from .commands import (cmd_analyze, cmd_audit, cmd_build_data, cmd_compare, cmd_evaluate, cmd_geometry, cmd_inspect,
                       cmd_objectives, cmd_presets, cmd_pretrain, cmd_probe, cmd_sweep, cmd_table, cmd_tasks, cmd_train)


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The spec and the options of running a sweep, shared by ``sweep`` and ``audit``."""
    parser.add_argument("spec")
    parser.add_argument("--concurrency", type=int, help="runs at once (default: the spec's, else 1)")
    parser.add_argument("--output-dir", help="replaces the spec's output_dir")
    parser.add_argument("--launcher", choices=["local", "ray", "slurm"],
                        help="where runs execute (default: the spec's, else local)")
    parser.add_argument("--address", help="a running Ray cluster, host:port (default: start a local one)")
    parser.add_argument("--cells", help="comma-separated: run only these cells now, in this order (the rest stay "
                        "to do)")
    parser.add_argument("--restore", metavar="RESULTS_JSONL", help="first add this copy's rows of the spec's runs "
                        "to the store (e.g. a results.jsonl committed beside a report): a fresh checkout resumes")
    parser.add_argument("--evaluate-on", help="comma-separated tasks to also evaluate every model on (replaces the "
                        "spec's evaluate_on)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmjepa", description="LLM-JEPA training and honest evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train and evaluate the config's run (or each of its variants)")
    train.add_argument("config")
    train.add_argument("--variant", action="append", help="variant to run (repeatable; default: all)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. jepa.lbd=0.5")
    train.add_argument("--task", help="task name (--set task=NAME, with the task's max_new_tokens); see `lmjepa tasks`")
    train.add_argument("--output-dir")
    train.add_argument("--force", action="store_true", help="recompute a finished run")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a trained run folder, or a config's model as is")
    evaluate.add_argument("target", help="run folder or config file")
    evaluate.add_argument("--set", action="append", metavar="KEY=VALUE")
    evaluate.add_argument("--task", help="evaluate on this task (and its max_new_tokens) instead of the config's")
    evaluate.add_argument("--out", help="folder for predictions.jsonl and metrics.json")
    evaluate.add_argument("--rescore", action="store_true",
                          help="score the folder's predictions.jsonl again (current metric), without generating")
    evaluate.set_defaults(func=cmd_evaluate)

    table = sub.add_parser("table", help="side-by-side metrics of finished runs")
    table.add_argument("runs", nargs="+")
    table.add_argument("--out")
    table.set_defaults(func=cmd_table)
    comp = sub.add_parser("compare", help="seed-paired statistics vs a baseline cell, family-wise corrected, and "
                          "what each cell cost to run")
    comp.add_argument("results", nargs="*", help="results JSONL (one run per line: cell, seed, metrics); several "
                      "as LABEL=PATH: cells become LABEL/cell, paired by seed across the stores")
    comp.add_argument("--cells", help="compare only these cells (comma-separated; the baseline among them)")
    comp.add_argument("--baseline", help="the cell every other cell is compared with")
    comp.add_argument("--metric", action="append", help="metric key (repeatable; default exact_match)")
    comp.add_argument("--correction", default="holm", choices=["holm", "bonferroni", "bh"])
    comp.add_argument("--alpha", type=float, default=0.05)
    comp.add_argument("--out", help="folder for report.md, stats.json, deltas.png")
    comp.add_argument("--task", action="append", help="an OOD task the runs were also evaluated on (repeatable): "
                      "adds ID vs OOD and the generalisation gap, per cell and against the baseline")
    comp.add_argument("--mcnemar", nargs=2, metavar=("RUN_A", "RUN_B"), help="McNemar test of two run folders")
    comp.add_argument("--interaction", nargs=4, metavar=("BASE_A", "TREATED_A", "BASE_B", "TREATED_B"),
                      help="the seed-paired 2 × 2 of one store: does the treated − base effect on exact match "
                      "differ between conditions A and B? (interaction, content / termination split, row-level model)")
    comp.add_argument("--conditions", default="A,B", help="names of conditions A and B in the report (comma-separated)")
    comp.add_argument("--predictions", help="a YAML of pre-registered predictions "
                      "(`predictions: [{text, cell, base, metric, low, high, ...}]`) to check against the records")
    comp.set_defaults(func=cmd_compare)

    sweep = sub.add_parser("sweep", help="train and evaluate every (cell, seed) of a sweep spec once")
    _add_sweep_arguments(sweep)
    sweep.add_argument("--status", action="store_true", help="run nothing: print each cell's finished, in-flight "
                       "and remaining runs and the time left, estimated from the finished runs' wall times")
    sweep.set_defaults(func=cmd_sweep)

    audit = sub.add_parser("audit", help="the JEPA audit: a sweep of factors and auxiliaries, corrected, with "
                                          "gradient coupling, geometry shifts and their coupling with the task metric")
    _add_sweep_arguments(audit)  # the report covers every cell with runs in the store, whatever --cells ran
    audit.add_argument("--report-only", action="store_true", help="report on the runs already in the store")
    audit.add_argument("--out", help="report folder (default: OUTPUT_DIR/audit)")
    audit.set_defaults(func=cmd_audit)

    geometry = sub.add_parser("geometry", help="the audit's geometry of a trained run's model (curvature, "
                              "anisotropy, uniformity, RankMe), cached in RUN/audit_geometry.json")
    geometry.add_argument("run", help="a finished run folder (with model/)")
    geometry.add_argument("--rows", type=int, default=200, help="test rows to embed (default 200)")
    geometry.set_defaults(func=cmd_geometry)

    pre = sub.add_parser("pretrain", help="pretrain a Predict-and-Reconstruct encoder (and its MLM-only control)")
    pre.add_argument("config")
    pre.add_argument("--variant", action="append")
    pre.add_argument("--set", action="append", metavar="KEY=VALUE")
    pre.add_argument("--output-dir")
    pre.add_argument("--force", action="store_true")
    pre.set_defaults(func=cmd_pretrain)

    probe = sub.add_parser("probe", help="GLUE linear probes and geometry of frozen encoders, side by side")
    probe.add_argument("runs", nargs="+", help="pretrain run folders (or encoder folders)")
    probe.add_argument("--data-dir")
    probe.add_argument("--max-train", type=int, default=8000, help="training rows per probe")
    probe.add_argument("--max-eval", type=int, help="evaluation rows per probe (default: all)")
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--head-seeds", type=int, default=5, help="probe heads (seeds) averaged for SST-2 and MRPC")
    probe.add_argument("--force", action="store_true", help="recompute cached probes.json")
    probe.add_argument("--out", help="folder for probes.md / probes.json")
    probe.set_defaults(func=cmd_probe)

    presets = sub.add_parser("presets", help="list the packaged presets (lmjepa train NAME runs one from any folder)")
    presets.set_defaults(func=cmd_presets)
    tasks = sub.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=cmd_tasks)
    inspect = sub.add_parser("inspect", help="what training sees: sequence, trained tokens, views, Enc tokens")
    inspect.add_argument("config")
    inspect.add_argument("--rows", type=int, default=3)
    inspect.add_argument("--json", action="store_true", help="one JSON object per row")
    inspect.add_argument("--set", action="append", metavar="KEY=VALUE")
    inspect.add_argument("--task")
    inspect.set_defaults(func=cmd_inspect)
    objectives = sub.add_parser("objectives", help="list the registered auxiliary terms (objectives: in a config)")
    objectives.set_defaults(func=cmd_objectives)

    build_data = sub.add_parser("build-data", help="build an LLM-JEPA-format training file from raw data")
    build_data.add_argument("name", help="gsm8k, nlrx-splits, parallel, paraphrase-nlrx or paraphrase-mrpc")
    build_data.add_argument("--data-dir")
    build_data.add_argument("--out", help="output JSONL (default: $LMJEPA_CACHE_DIR/data/llm-jepa/<name>_train.jsonl); "
                            "nlrx-splits: a folder (default $LMJEPA_CACHE_DIR/data/nlrx-splits)")
    build_data.add_argument("--src", help="parallel: descriptions, one per line")
    build_data.add_argument("--targ", help="parallel: targets (regexes), one per line, aligned with --src")
    build_data.add_argument("--system", help="parallel: the system prompt of every row")
    build_data.add_argument("--seed", type=int, default=0, help="nlrx-splits: the shuffle seed")
    build_data.add_argument("--min-test", type=int, default=300, help="nlrx-splits: held-out rows at least")
    build_data.add_argument("--combo", help="nlrx-splits: held-out compositions OUTER>INNER, comma-separated "
                            "(e.g. '~>&,{n,}>|'); default: the rarest with >= --min-test rows")
    build_data.add_argument("--with-regex", action="store_true", help="paraphrase-nlrx: the regex as a third view")
    build_data.add_argument("--tokenizer", default="smollm2-135m-instruct",
                            help="nlrx-splits: the tokenizer counting target tokens for the length split")
    build_data.set_defaults(func=cmd_build_data)

    analyze = sub.add_parser("analyze", help="representation geometry of several models on one dataset")
    analyze.add_argument("spec", nargs="?", help="YAML with AnalyzeConfig keys (flags override it)")
    analyze.add_argument("--model", action="append", metavar="LABEL=MODEL",
                         help="built-in name, HF folder or run folder (repeatable; side by side)")
    analyze.add_argument("--data", help="two-view name (synth, turk, ...), sst2, rotten-tomatoes, or a file")
    analyze.add_argument("--split")
    analyze.add_argument("--data-dir")
    analyze.add_argument("--max-examples", type=int)
    analyze.add_argument("--layer", type=int, help="hidden_states index (-1 = last layer)")
    analyze.add_argument("--predictors", type=int, help="k predictor tokens on the Text view (default 0)")
    analyze.add_argument("--view-format", choices=["content", "chat"],
                         help="two-view rows as bare content (default) or as the chat views training reads")
    analyze.add_argument("--pooling", action="append", choices=["last", "mean", "max", "attention"])
    analyze.add_argument("--batch-size", type=int)
    analyze.add_argument("--no-probes", action="store_true")
    analyze.add_argument("--no-tsne", action="store_true")
    analyze.add_argument("--out", help="output folder (default runs/analyze)")
    analyze.set_defaults(func=cmd_analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bars at every save; the Trainer keeps its own
    args = build_parser().parse_args(argv)
    try:
        for key in ("config", "spec"):  # a file path, or the name of a packaged preset
            value = getattr(args, key, None)
            if isinstance(value, str) and not Path(value).exists():
                setattr(args, key, str(find_config(value)))
        return args.func(args)
    except LmjepaError as err:
        print(f"lmjepa: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # NonFiniteLossError: the last good checkpoint is kept
        print(f"lmjepa: training stopped: {err}", file=sys.stderr)
        return 3
    except (OSError, RuntimeError) as err:
        message = machine_fault(err)
        if message is None:
            raise
        print(f"lmjepa: error: {message}", file=sys.stderr)
        return 2


# A fault of the machine, not of lmjepa: one line naming the path. torch's zip writer reports a full disk as
# "PytorchStreamWriter failed writing file …" / "unexpected pos …" (a RuntimeError without errno).
MACHINE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EROFS: "read-only filesystem", errno.EACCES: "permission denied", errno.EPERM: "not permitted"}
TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "No space left on device")


def machine_fault(err: BaseException) -> str | None:
    """The one-line message for a full disk, a quota, a read-only folder or a refused write (``err`` an OSError
    with that errno, or torch's write RuntimeError), or None for anything else (a bug: its traceback shows).
    Checkpoints are written whole or not at all (``run_folder.AtomicCheckpoints``) and records atomically, so
    nothing half-written remains: free space and run the command again, it resumes."""
    if isinstance(err, OSError) and err.errno in MACHINE_ERRNOS:
        where = f"{err.filename}: " if err.filename else ""
        what = MACHINE_ERRNOS[err.errno]
    elif isinstance(err, RuntimeError) and any(s in str(err) for s in TORCH_WRITE_FAILURES):
        where, what = "", f"writing a file failed ({' '.join(str(err).split())[:160]}); is the disk full?"
    else:
        return None
    return f"{where}{what} — nothing half-written was kept; free space (or fix the permissions) and run again: " \
           "it resumes from the last complete checkpoint"


if __name__ == "__main__":
    sys.exit(main())
