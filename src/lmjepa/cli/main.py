"""``lmjepa`` command line.

    lmjepa train CONFIG.yaml [--variant NAME ...] [--set section.key=value ...] [--output-dir DIR] [--force]
    lmjepa evaluate RUN_DIR [--set ...] [--out DIR]          # a trained run's model/
    lmjepa evaluate CONFIG.yaml --out DIR [--set ...]        # the config's model as is (zero-shot)
    lmjepa evaluate RUN_DIR --rescore                        # score saved predictions again, no generation
    lmjepa table RUN_DIR [RUN_DIR ...] [--out table.md]      # side-by-side metrics
    lmjepa compare RESULTS.jsonl --baseline CELL [--metric M ...] [--correction holm|bonferroni|bh] [--out DIR]
    lmjepa compare --mcnemar RUN_A RUN_B                     # per-example exact-match correctness
    lmjepa sweep SPEC.yaml [--concurrency N] [--output-dir DIR]  # cells × seeds into a results store
    lmjepa pretrain CONFIG.yaml [--variant NAME ...]         # Predict-and-Reconstruct encoder (hybrid / MLM-only)
    lmjepa probe RUN_DIR [RUN_DIR ...] [--out DIR]           # frozen-encoder GLUE probes + geometry table
    lmjepa tasks                                             # the registered tasks
    lmjepa build-data gsm8k [--out FILE]                     # LLM-JEPA-format training file from raw data
    lmjepa analyze [SPEC.yaml] --model LABEL=MODEL ... [--data nlrx-synth] [--out DIR]  # representation geometry
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..config import load_config, parse_override
from ..data.jsonl import DataError
from ..io import atomic_write_json, atomic_write_text


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown table, one row per run: task, λ, k, the task's metric and exact match (in %), n, wall times."""
    from ..evaluation.tasks import METRICS

    lines = ["| run | task | λ | k | metric | % | exact match % | details | n | train s | eval s |", "|" + "---|" * 11]
    for name, m in results.items():
        metric = m.get("metric", "regex")
        key = METRICS.get(metric, (f"{metric}_match",))[0]
        value = m.get(key)
        details = []
        if "semantic_match_nondegenerate" in m:
            details.append(f"non-degenerate targets {m['semantic_match_nondegenerate']:.2f}% (n={m.get('n_nondegenerate')})")
        if m.get("undecided"):
            details.append(f"{m['undecided']} undecided")
        if "note" in m:
            details.append(m["note"])
        if "invalid" in m:
            details.append(f"{m['invalid']} not a label")
        if "answer_marker_rate" in m:
            details.append(f"'#### N' in {m['answer_marker_rate']:.1f}%; last number right {m['last_number_match']:.1f}%")
        if "contains_target" in m:  # content vs termination (evaluation/diagnostics.py)
            stopped = f"{m['stopped']:.1f}%" if "stopped" in m else "not recorded"
            extra = "n/a" if m.get("mean_extra_tokens") is None else f"{m['mean_extra_tokens']:.1f}"
            details.append(f"contains target {m['contains_target']:.1f}%, stopped {stopped}, exact if cut at "
                           f"line break {m['exact_if_truncated']:.1f}%, extra tokens {extra}")
        lines.append(
            f"| {name} | {m.get('task', 'nlrx-synth')} | {m.get('lbd', '')} | {m.get('predictors', '')} | {key} | "
            f"{'' if value is None else f'{value:.2f}'} | {m['exact_match']:.2f} | {'; '.join(details)} | {m['n']} | "
            f"{m.get('train_seconds', '')} | {m.get('eval_seconds', '')} |"
        )
    return "\n".join(lines) + "\n"


def _overrides(args) -> dict:
    overrides = dict(parse_override(text) for text in args.set or [])
    if getattr(args, "task", None):  # another task brings its own generation budget unless one is --set
        overrides["task"] = args.task
        overrides.setdefault("eval.max_new_tokens", None)
    return overrides


def cmd_train(args) -> int:
    from ..training.run import run_variants

    config = load_config(args.config, _overrides(args))
    if args.output_dir:
        config = config.with_overrides({"output_dir": args.output_dir})
    results = run_variants(config, args.variant, force=args.force)
    if not all(results.values()):  # a non-main process under `accelerate launch`: nothing to report
        return 0
    table = comparison_table(results)
    if len(results) > 1:
        atomic_write_text(Path(config.output_dir) / "comparison.md", table)
    print(table)
    return 0


def _rescore(args, target: Path) -> int:
    """``lmjepa evaluate TARGET --rescore``: score the saved predictions again, keep the other fields."""
    from ..evaluation.evaluate import rescore
    from ..training.run import evaluation_data_dir, task_of

    config = load_config(target / "config.yaml" if target.is_dir() else target, _overrides(args))
    if not target.is_dir() and not args.out:
        raise SystemExit("lmjepa evaluate CONFIG --rescore needs --out DIR (the folder with predictions.jsonl)")
    from ..models.loading import load_tokenizer, resolve_model_path

    out = Path(args.out or target)
    model_dir = target / "model" if target.is_dir() and (target / "model").is_dir() else None
    tokenizer = load_tokenizer(str(model_dir) if model_dir else resolve_model_path(config.model.name))
    metrics = rescore(out, task_of(config), config.eval, evaluation_data_dir(config), tokenizer=tokenizer)
    return _save_metrics(out, config.name, metrics, merge=True)


def _save_metrics(out: Path, name: str, metrics: dict, merge: bool) -> int:
    """Write ``out/metrics.json`` atomically — over the fields of the one already there if ``merge``
    (other fields, e.g. training times, are kept) — and print its table row."""
    if merge and (out / "metrics.json").exists():
        metrics = {**json.loads((out / "metrics.json").read_text()), **metrics}
    atomic_write_json(out / "metrics.json", metrics)
    print(comparison_table({name: metrics}))
    return 0


def cmd_evaluate(args) -> int:
    from ..evaluation.evaluate import evaluate_examples
    from ..models.loading import load_model, load_tokenizer
    from ..training.run import build_model_and_tokenizer, evaluation_data_dir, load_examples, task_of

    target = Path(args.target)
    if args.rescore:
        return _rescore(args, target)
    if target.is_dir():
        config = load_config(target / "config.yaml", _overrides(args))
        tokenizer = load_tokenizer(str(target / "model"))
        model = load_model(str(target / "model"), tokenizer)
        out = Path(args.out or target)
    else:
        config = load_config(target, _overrides(args))
        if not args.out:
            raise SystemExit("lmjepa evaluate CONFIG needs --out DIR")
        model, tokenizer, _ = build_model_and_tokenizer(config)
        out = Path(args.out)
    metrics = evaluate_examples(model, tokenizer, load_examples(config, "test"), task_of(config), config.eval, out,
                                evaluation_data_dir(config))
    if target.is_dir():  # a trained run: its objective's λ and k describe the model
        metrics.update(name=config.name, lbd=config.jepa.lbd, predictors=config.jepa.predictors)
    else:  # the config's base model as it is: no objective was applied, so no λ or k is recorded
        metrics.update(name=config.name, model=config.model.name, fine_tuned=False)
    return _save_metrics(out, config.name, metrics, merge=target.is_dir() and out == target)


def cmd_table(args) -> int:
    import os

    results = {}
    # Rows are named by the path below the runs' common folder (the run folder's name for one run).
    common = os.path.commonpath([str(Path(r).resolve()) for r in args.runs]) if len(args.runs) > 1 else None
    for run in args.runs:
        path = Path(run) / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"{path}: not found (is {run} a finished run?)")
        name = os.path.relpath(Path(run).resolve(), common) if common else Path(run).resolve().name
        results[name if name != "." else run] = json.loads(path.read_text())
    table = comparison_table(results)
    if args.out:
        atomic_write_text(args.out, table)
    print(table)
    return 0


def cmd_compare(args) -> int:
    from ..stats.compare import compare, load_results, write_report
    from ..stats.paired import mcnemar

    if args.mcnemar:
        rows = [[json.loads(line)["exact_match"] for line in (Path(run) / "predictions.jsonl").read_text().splitlines()]
                for run in args.mcnemar]
        result = mcnemar(*rows)
        print(f"McNemar exact test on exact-match correctness: {result['b']} examples right only in {args.mcnemar[0]}, "
              f"{result['c']} right only in {args.mcnemar[1]}; p = {result['p']:.4g}")
        return 0
    if not args.results or not args.baseline:
        raise SystemExit("lmjepa compare needs RESULTS and --baseline CELL (or --mcnemar RUN_A RUN_B)")
    rows = load_results(args.results)
    result = compare(rows, args.baseline, args.metric or ["exact_match"], args.correction, args.alpha)
    report = write_report(result, args.out or Path(args.results).parent / "compare", rows)
    print(report.read_text())
    print(f"written: {report}, stats.json, deltas.png")
    return 0


def cmd_sweep(args) -> int:
    from ..training.sweep import run_sweep

    store = run_sweep(args.spec, args.concurrency, args.output_dir)
    print(f"results: {store}\nnext: lmjepa compare {store} --baseline CELL")
    return 0


def cmd_pretrain(args) -> int:
    from ..config import PretrainConfig
    from ..training.pretrain import pretrain
    from ..training.run import run_variants

    config = load_config(args.config, _overrides(args), cls=PretrainConfig)
    if args.output_dir:
        config = config.with_overrides({"output_dir": args.output_dir})
    results = run_variants(config, args.variant, force=args.force, runner=pretrain)
    for name, metrics in results.items():
        if metrics:
            print(f"{name}: {metrics['train_steps']} steps, final loss {metrics['train_loss']:.4f}, "
                  f"{metrics['train_seconds']} s -> {config.output_dir}")
    return 0


PROBE_COLUMNS = [("sst2_accuracy", "SST-2 acc", "{:.3f}"), ("mrpc_f1", "MRPC F1", "{:.3f}"),
                 ("stsb_spearman", "STS-B ρ", "{:.3f}"), ("mean/uniformity", "uniformity ↓", "{:.3f}"),
                 ("mean/effective_rank", "eff. rank", "{:.1f}"), ("mean/probe_gap", "probe gap", "{:+.3f}"),
                 ("max/uniformity", "uniformity (max) ↓", "{:.3f}"), ("max/effective_rank", "eff. rank (max)", "{:.1f}")]


def _probe_comparisons(rows: dict[str, dict]) -> str:
    """Markdown: each encoder against the first one, paired tests with Holm correction per pair."""
    from ..evaluation.encoder_probes import compare_encoders

    names = list(rows)
    if len(names) < 2:
        return ""
    lines = [f"\nPaired against `{Path(names[0]).name}` on the same evaluation rows "
             "(Holm over the three probes of each encoder):\n",
             "| encoder | probe | Δ | test | p | p (Holm) | decision |", "|---|---|---|---|---|---|---|"]
    for name in names[1:]:
        if "per_example" not in rows[name] or "per_example" not in rows[names[0]]:
            lines.append(f"| {Path(name).name} | — | | cached result without per-example data: re-run with --force | | | |")
            continue
        for r in compare_encoders(rows[names[0]], rows[name]):
            decision = "differs" if r["reject"] else "no evidence of a difference"
            lines.append(f"| {Path(name).name} | {r['probe']} ({r['metric']}) | {r['delta']:+.3f} | {r['test']} | "
                         f"{r['p']:.3g} | {r['p_adjusted']:.3g} | {decision} |")
    return "\n".join(lines) + "\n"


def cmd_probe(args) -> int:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from ..evaluation.encoder_probes import evaluate_encoder, majority_baselines

    rows = {}
    for run in args.runs:
        folder = Path(run) / "model" if (Path(run) / "model").is_dir() else Path(run)
        cache = Path(run) / "probes.json"
        if cache.is_file() and not args.force:
            rows[run] = json.loads(cache.read_text())
            continue
        pooling_free = {"add_pooling_layer": False} if AutoConfig.from_pretrained(folder).model_type == "bert" else {}
        model, tokenizer = AutoModel.from_pretrained(folder, **pooling_free), AutoTokenizer.from_pretrained(folder)
        rows[run] = evaluate_encoder(model, tokenizer, args.data_dir, args.max_train, args.max_eval, args.seed,
                                     head_seeds=args.head_seeds)
        atomic_write_json(cache, rows[run])
    lines = ["| encoder | " + " | ".join(h for _, h, _ in PROBE_COLUMNS) + " |", "|---" * (len(PROBE_COLUMNS) + 1) + "|"]
    for run, r in rows.items():
        cells = [(f.format(r[k]) + (f" ± {r[k + '_sd']:.3f}" if k + "_sd" in r else "")) if k in r else ""
                 for k, _, f in PROBE_COLUMNS]
        lines.append(f"| {Path(run).name} | " + " | ".join(cells) + " |")
    chance = majority_baselines(args.data_dir, args.max_train, args.max_eval)
    lines.append("| *majority class (no encoder)* | " + " | ".join(
        f.format(chance[k]) if k in chance else "" for k, _, f in PROBE_COLUMNS) + " |")
    table = "\n".join(lines) + "\n" + _probe_comparisons(rows)
    if args.out:
        from ..analysis.report import plot_training_curves

        histories = {Path(run).name: json.loads((Path(run) / "metrics.json").read_text()).get("log_history", [])
                     for run in args.runs if (Path(run) / "metrics.json").is_file()}
        if plot_training_curves(histories, Path(args.out) / "training_curves.png"):
            table += "\n![training curves](training_curves.png)\n"
        atomic_write_text(Path(args.out) / "probes.md", table)
        atomic_write_json(Path(args.out) / "probes.json", rows)
    print(table)
    return 0


def cmd_tasks(args) -> int:
    from ..evaluation.tasks import METRICS, TASKS

    print("| task | metric | reported as | test file | train file | max new tokens |\n|---|---|---|---|---|---|")
    for task in TASKS.values():
        how = f"choice among {'/'.join(task.choices)}" if task.choices else str(task.max_new_tokens)
        train = task.train_file or "(evaluation only)"
        if task.build:
            train += f" — build: `lmjepa build-data {task.build}`"
        print(f"| {task.name} | {task.metric} | {METRICS[task.metric][0]} | {task.test_file} | {train} | {how} |")
    return 0


def cmd_build_data(args) -> int:
    from ..data.build import build

    path, rows = build(args.name, args.data_dir, args.out)
    print(f"wrote {rows} rows to {path}")
    return 0


def cmd_analyze(args) -> int:
    import dataclasses

    import yaml

    from ..analysis.analyze import AnalyzeConfig, run_analysis

    values = {}
    if args.spec:
        values = yaml.safe_load(Path(args.spec).read_text()) or {}
        unknown = set(values) - {f.name for f in dataclasses.fields(AnalyzeConfig)}
        if unknown:
            raise ValueError(f"{args.spec}: unknown key(s) {sorted(unknown)}")
    for text in args.model or []:
        label, sep, spec = text.partition("=")
        if not sep:
            label, spec = Path(text.rstrip("/")).name, text
        values.setdefault("models", {})[label] = spec
    flags = {"dataset": args.data, "split": args.split, "max_examples": args.max_examples, "output_dir": args.out,
             "layer": args.layer, "predictors": args.predictors, "poolings": args.pooling,
             "batch_size": args.batch_size, "data_dir": args.data_dir}
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.no_probes:
        values["probes"] = False
    if args.no_tsne:
        values["tsne"] = False
    report = run_analysis(AnalyzeConfig(**values))
    print(report.read_text())
    print(f"written: {report.parent}/ geometry.json, report.md, *.png")
    return 0


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
    comp = sub.add_parser("compare", help="seed-paired statistics vs a baseline cell, family-wise corrected")
    comp.add_argument("results", nargs="?", help="results JSONL (one run per line: cell, seed, metrics)")
    comp.add_argument("--baseline", help="the cell every other cell is compared with")
    comp.add_argument("--metric", action="append", help="metric key (repeatable; default exact_match)")
    comp.add_argument("--correction", default="holm", choices=["holm", "bonferroni", "bh"])
    comp.add_argument("--alpha", type=float, default=0.05)
    comp.add_argument("--out", help="folder for report.md, stats.json, deltas.png")
    comp.add_argument("--mcnemar", nargs=2, metavar=("RUN_A", "RUN_B"), help="McNemar test of two run folders")
    comp.set_defaults(func=cmd_compare)

    sweep = sub.add_parser("sweep", help="train and evaluate every (cell, seed) of a sweep spec once")
    sweep.add_argument("spec")
    sweep.add_argument("--concurrency", type=int, help="runs at once (default: the spec's, else 1)")
    sweep.add_argument("--output-dir", help="replaces the spec's output_dir")
    sweep.set_defaults(func=cmd_sweep)

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

    tasks = sub.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=cmd_tasks)

    build_data = sub.add_parser("build-data", help="build an LLM-JEPA-format training file from raw data")
    build_data.add_argument("name", help="gsm8k")
    build_data.add_argument("--data-dir")
    build_data.add_argument("--out", help="output JSONL (default: $LMJEPA_CACHE_DIR/data/llm-jepa/<name>_train.jsonl)")
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
    analyze.add_argument("--pooling", action="append", choices=["last", "mean", "max", "attention"])
    analyze.add_argument("--batch-size", type=int)
    analyze.add_argument("--no-probes", action="store_true")
    analyze.add_argument("--no-tsne", action="store_true")
    analyze.add_argument("--out", help="output folder (default runs/analyze)")
    analyze.set_defaults(func=cmd_analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, KeyError, FileNotFoundError, ValueError) as err:
        print(f"lmjepa: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"lmjepa: training stopped: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
