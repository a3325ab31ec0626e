"""The ``lmjepa`` commands: each turns parsed arguments into one library call and prints its result.

``cli/main.py`` builds the parser and maps each subcommand onto one of these (``set_defaults(func=...)``).
Library imports stay inside each command, so ``lmjepa --help`` does not load torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import parse_override
from ..errors import ConfigError
from ..io import atomic_write_text


def _overrides(args) -> dict:
    overrides = dict(parse_override(text) for text in args.set or [])
    if getattr(args, "task", None):  # another task brings its own generation budget unless one is --set
        overrides["task"] = args.task
        overrides.setdefault("eval.max_new_tokens", None)
    return overrides


def cmd_train(args) -> int:
    from ..pipeline.run import train_variants

    overrides = _overrides(args) | ({"output_dir": args.output_dir} if args.output_dir else {})
    _, table = train_variants(args.config, overrides, args.variant, force=args.force)
    if table is not None:  # None on a non-main process under `accelerate launch`: nothing to report
        print(table)
    return 0


def cmd_evaluate(args) -> int:
    from ..evaluation.report import comparison_table
    from ..pipeline.run import evaluate_target, rescore_target

    run = rescore_target if args.rescore else evaluate_target
    name, metrics = run(args.target, _overrides(args), args.out)
    print(comparison_table({name: metrics}))
    return 0


def cmd_table(args) -> int:
    from ..evaluation.report import table_of_runs

    table = table_of_runs(args.runs)
    if args.out:
        atomic_write_text(args.out, table)
    print(table)
    return 0


def cmd_compare(args) -> int:
    from ..pipeline.compare import compare_stores, mcnemar

    if args.mcnemar:
        if args.predictions:
            raise ConfigError("--predictions checks a store (with --baseline or --interaction), not --mcnemar")
        result = mcnemar(*args.mcnemar)
        print(f"McNemar exact test on exact-match correctness: {result['b']} examples right only in {args.mcnemar[0]}, "
              f"{result['c']} right only in {args.mcnemar[1]}; p = {result['p']:.4g}")
        return 0
    if args.interaction:
        from ..pipeline.compare import interaction_report

        names = tuple(args.conditions.split(","))
        if len(args.results) != 1 or len(names) != 2:
            raise ConfigError("lmjepa compare --interaction needs one RESULTS store and --conditions A,B (two names)")
        report = interaction_report(args.results[0], args.interaction, names, out=args.out,
                                    predictions=args.predictions)
        print(report.read_text())
        print(f"written: {report}, interaction.png")
        return 0
    if not args.results or not args.baseline:
        raise ConfigError("lmjepa compare needs RESULTS and --baseline CELL (or --mcnemar RUN_A RUN_B)")
    report = compare_stores(args.results, args.baseline, args.metric or ["exact_match"],
                            args.cells.split(",") if args.cells else None, args.correction, args.alpha, args.task,
                            args.out, args.predictions)
    print(report.read_text())
    print(f"written: {report}, stats.json, deltas.png")
    return 0


def _sweep_options(args) -> dict:
    """The options ``sweep`` and ``audit`` share (``_add_sweep_arguments``), as ``run_sweep`` keywords."""
    return {"concurrency": args.concurrency, "output_dir": args.output_dir, "launcher": args.launcher,
            "address": args.address, "cells": args.cells.split(",") if args.cells else None,
            "evaluate_on": args.evaluate_on.split(",") if args.evaluate_on else None}


def _restore(args) -> None:
    """``--restore COPY``: the copy's rows of the spec's runs join its store before anything runs."""
    from ..pipeline.sweep import restore_results

    if args.restore:
        counts = restore_results(args.spec, args.restore, args.output_dir)
        print(f"restore: from {args.restore}: {counts['added']} rows added, {counts['merged']} merged (metrics the "
              f"store lacked), {counts['skipped']} skipped (runs this spec does not plan)")


def cmd_sweep(args) -> int:
    from ..pipeline.sweep import run_sweep

    if args.status:  # read-only: nothing restored, locked or run
        from ..pipeline.sweep_status import render_status, sweep_status

        if args.restore:
            raise ConfigError("--status only reads the store; run --restore without it")
        print(render_status(sweep_status(args.spec, args.output_dir, args.concurrency)))
        return 0
    _restore(args)
    store = run_sweep(args.spec, **_sweep_options(args))
    print(f"results: {store}\nnext: lmjepa compare {store} --baseline CELL")
    return 0


def cmd_audit(args) -> int:
    from ..analysis.audit import check_spec
    from ..pipeline.audit import run_audit

    check_spec(args.spec)   # a bad audit section is refused before --restore writes the store
    _restore(args)
    report = run_audit(args.spec, args.report_only, args.out, **_sweep_options(args))
    print(report.read_text())
    print(f"written: {report.parent}/ report.md, stats.json, deltas.png, coupling_*.png")
    return 0


def cmd_geometry(args) -> int:
    from ..analysis.audit import run_geometry

    metrics = run_geometry(args.run, args.rows)
    print("  ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
    print(f"written: {Path(args.run) / 'audit_geometry.json'}")
    return 0


def cmd_pretrain(args) -> int:
    from ..pipeline.run import pretrain_variants

    overrides = _overrides(args) | ({"output_dir": args.output_dir} if args.output_dir else {})
    config, results = pretrain_variants(args.config, overrides, args.variant, force=args.force)
    for name, metrics in results.items():
        if metrics:
            print(f"{name}: {metrics['train_steps']} steps, final loss {metrics['train_loss']:.4f}, "
                  f"{metrics['train_seconds']} s -> {config.output_dir}")
    return 0


def cmd_probe(args) -> int:
    from ..pipeline.compare import probe

    print(probe(args.runs, args.data_dir, args.max_train, args.max_eval, args.seed, args.head_seeds, args.force,
                args.out))
    return 0


def cmd_presets(args) -> int:
    """One line per packaged preset: its name (what ``lmjepa train NAME`` takes) and its first comment line."""
    from ..config import PRESETS, preset_names

    for name in preset_names():
        lines = (PRESETS / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
        about = next((l.lstrip("# ").strip() for l in lines if l.startswith("#") and l.strip("# ")), "")
        print(f"{name:40s} {about}")
    return 0


def cmd_tasks(args) -> int:
    from ..data.tasks import built
    from ..evaluation.tasks import METRICS, TASKS

    print("| task | metric | reported as | test file | train file | max new tokens |\n|---|---|---|---|---|---|")
    for task in TASKS.values():
        how = f"choice among {'/'.join(task.choices)}" if task.choices else str(task.max_new_tokens)
        files = [task.test_file, task.train_file or "(evaluation only)"]
        if task.build:  # the hint goes beside the file(s) the build writes
            for i in [i for i, f in enumerate(files) if built(f)] or [1]:
                files[i] += f" — build: `lmjepa build-data {task.build}`"
        print(f"| {task.name} | {task.metric} | {METRICS[task.metric][0]} | {files[0]} | {files[1]} | {how} |")
    return 0


def cmd_inspect(args) -> int:
    from ..pipeline.run import inspect

    found = inspect(args.config, _overrides(args), args.rows)
    if args.json:  # one document: the resolved objective, the views, then the rows
        print(json.dumps(found, ensure_ascii=False))
        return 0
    views = found["views"]
    print("objective: " + " + ".join(f"{t['weight']:g}·{t['name']}" for t in found["objective"]))
    print(f"view mode: {views['mode']} ({views['why']}), {views['format']} format")
    for i, row in enumerate(found["rows"], start=1):
        print(f"--- row {i} " + "-" * 60)
        for key, value in row.items():
            print(f"{key}: {value!r}")
    return 0


def cmd_objectives(args) -> int:
    from ..objectives import AUXILIARIES, FAMILIES

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    print("| name | family | formula | source | needs | parameters (defaults) |\n|---|---|---|---|---|---|")
    for name, cls in sorted(AUXILIARIES.items(), key=lambda item: FAMILIES.index(item[1].family)):
        needs = cls().needs() if name != "llm-jepa" else cls(hidden_size=1).needs()
        what = ", ".join(w for w, on in (("views", needs.views), (f"hidden states {list(needs.layers)}", needs.layers),
                                         ("LM head", needs.lm_head)) if on) or "—"
        params = ", ".join(f"{k}={v}" for k, v in cls.PARAMS.items()) or "—"
        print(f"| `{name}` | {cls.family} | {cell(cls.formula)} | {cell(cls.source)} | {what} | {params} |")
    return 0


def cmd_build_data(args) -> int:
    from ..pipeline.data import build_data

    options = {"src": args.src, "targ": args.targ, "system": args.system, "seed": args.seed, "min_test": args.min_test,
               "with_regex": args.with_regex}
    path, rows, summary = build_data(args.name, args.data_dir, args.out, args.tokenizer, args.combo, **options)
    print(f"wrote {rows} rows to {path}")
    if summary:
        print(summary)
    return 0


def cmd_analyze(args) -> int:
    from ..analysis.analyze import analyze_config, run_analysis

    flags = {"dataset": args.data, "split": args.split, "max_examples": args.max_examples, "output_dir": args.out,
             "layer": args.layer, "predictors": args.predictors, "view_format": args.view_format,
             "poolings": args.pooling,
             "batch_size": args.batch_size, "data_dir": args.data_dir,
             "probes": False if args.no_probes else None, "tsne": False if args.no_tsne else None}
    report = run_analysis(analyze_config(args.spec, args.model or [], flags))
    print(report.read_text())
    print(f"written: {report.parent}/ geometry.json, report.md, *.png")
    return 0
