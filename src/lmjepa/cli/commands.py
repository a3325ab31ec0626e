"""The ``lmjepa`` commands: each turns parsed arguments into one library call and prints its result.

``cli/main.py`` builds the parser and maps each subcommand onto one of these (``set_defaults(func=...)``).
Library imports stay inside each command, so ``lmjepa --help`` does not load torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import parse_override, read_yaml
from ..errors import ConfigError
from ..io import atomic_write_text


def _overrides(args) -> dict:
    overrides = dict(parse_override(text) for text in args.set or [])
    if getattr(args, "task", None):  # another task brings its own generation budget unless one is --set
        overrides["task"] = args.task
        overrides.setdefault("eval.max_new_tokens", None)
    return overrides


def cmd_train(args) -> int:
    from ..evaluation.report import comparison_table
    from ..evaluation.run import train_and_evaluate
    from ..evaluation.tasks import check_config
    from ..training.config import load_run_config
    from ..training.run_folder import run_variants

    overrides = _overrides(args) | ({"output_dir": args.output_dir} if args.output_dir else {})
    config = load_run_config(args.config, overrides)
    check_config(config)
    results = run_variants(config, train_and_evaluate, args.variant, force=args.force)
    if not all(results.values()):  # a non-main process under `accelerate launch`: nothing to report
        return 0
    table = comparison_table(results)
    if len(results) > 1:
        atomic_write_text(Path(config.output_dir) / "comparison.md", table)
    print(table)
    return 0


def cmd_evaluate(args) -> int:
    from ..evaluation.report import comparison_table
    from ..evaluation.run import evaluate_target, rescore_target

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
    from ..stats.compare import compare, load_stores, mcnemar_runs, split_store, write_report

    if args.mcnemar:
        result = mcnemar_runs(*args.mcnemar)
        print(f"McNemar exact test on exact-match correctness: {result['b']} examples right only in {args.mcnemar[0]}, "
              f"{result['c']} right only in {args.mcnemar[1]}; p = {result['p']:.4g}")
        return 0
    if not args.results or not args.baseline:
        raise ConfigError("lmjepa compare needs RESULTS and --baseline CELL (or --mcnemar RUN_A RUN_B)")
    rows = load_stores(args.results, args.cells.split(",") if args.cells else None)
    result = compare(rows, args.baseline, args.metric or ["exact_match"], args.correction, args.alpha)
    if args.task:
        from ..stats.generalisation import gap_table

        result["generalisation"] = gap_table(rows, args.baseline, result["metrics"], args.task, args.correction,
                                             args.alpha)
    report = write_report(result, args.out or Path(split_store(args.results[0])[1]).parent / "compare", rows)
    print(report.read_text())
    print(f"written: {report}, stats.json, deltas.png")
    return 0


def _run_sweep(args, geometry_rows: int = 0) -> Path:
    """``run_sweep`` with the options ``sweep`` and ``audit`` share (``_add_sweep_arguments``)."""
    from ..training.sweep import run_sweep

    _restore(args)
    return run_sweep(args.spec, args.concurrency, args.output_dir, args.launcher, args.address,
                     args.cells.split(",") if args.cells else None,
                     args.evaluate_on.split(",") if args.evaluate_on else None, geometry_rows)


def _restore(args) -> None:
    """``--restore COPY``: the copy's rows of the spec's runs join the store before anything runs."""
    if getattr(args, "restore", None):
        from ..training.sweep import restore_results

        counts = restore_results(args.spec, args.restore, args.output_dir)
        print(f"restore: from {args.restore}: {counts['added']} rows added, {counts['merged']} merged (metrics the "
              f"store lacked), {counts['skipped']} skipped (runs this spec does not plan)")


def cmd_sweep(args) -> int:
    store = _run_sweep(args)
    print(f"results: {store}\nnext: lmjepa compare {store} --baseline CELL")
    return 0


def cmd_audit(args) -> int:
    from ..analysis.audit import audit_report, check_spec

    settings = check_spec(args.spec)  # before anything trains
    store = Path(args.output_dir or yaml_output_dir(args.spec)) / "results.jsonl"
    if not args.report_only:  # each run's geometry is computed as it finishes, where its model is
        store = _run_sweep(args, settings["geometry_rows"])
    else:
        _restore(args)
    report = audit_report(args.spec, store, args.out or store.parent / "audit")
    print(report.read_text())
    print(f"written: {report.parent}/ report.md, stats.json, deltas.png, coupling_*.png")
    return 0


def cmd_geometry(args) -> int:
    from ..analysis.audit import run_geometry

    metrics = run_geometry(args.run, args.rows)
    print("  ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
    print(f"written: {Path(args.run) / 'audit_geometry.json'}")
    return 0


def yaml_output_dir(spec: str) -> str:
    import yaml

    return read_yaml(spec).get("output_dir", ".")


def cmd_pretrain(args) -> int:
    from ..config import load_config
    from ..training.pretrain import pretrain
    from ..training.pretrain_config import PretrainConfig
    from ..training.run_folder import run_variants

    overrides = _overrides(args) | ({"output_dir": args.output_dir} if args.output_dir else {})
    config = load_config(args.config, overrides, cls=PretrainConfig)
    for name, metrics in run_variants(config, pretrain, args.variant, force=args.force).items():
        if metrics:
            print(f"{name}: {metrics['train_steps']} steps, final loss {metrics['train_loss']:.4f}, "
                  f"{metrics['train_seconds']} s -> {config.output_dir}")
    return 0


def cmd_probe(args) -> int:
    from ..analysis.encoder_probes import majority_baselines, probe_runs, write_probe_report

    rows = probe_runs(args.runs, args.data_dir, args.max_train, args.max_eval, args.seed, args.head_seeds, args.force)
    chance = majority_baselines(args.data_dir, args.max_train, args.max_eval)
    print(write_probe_report(args.runs, rows, chance, args.out))
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
    from ..evaluation.tasks import check_config
    from ..training.config import load_run_config
    from ..training.run import inspect_rows, resolved_views

    config = load_run_config(args.config, _overrides(args))
    check_config(config)
    rows = inspect_rows(config, args.rows)
    mode, why = resolved_views(config)
    if args.json:  # one document: the resolved objective, the views, then the rows
        views = {"requested": config.jepa.views, "mode": mode, "why": why, "format": config.jepa.view_format,
                 "shared_view_prefix": config.jepa.shared_view_prefix}
        print(json.dumps({"objective": config.objective_terms(), "views": views, "rows": rows}, ensure_ascii=False))
        return 0
    print("objective: " + " + ".join(f"{t['weight']:g}·{t['name']}" for t in config.objective_terms()))
    print(f"view mode: {mode} ({why}), {config.jepa.view_format} format")
    for i, row in enumerate(rows, start=1):
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
    from ..data.build import build

    options = {"src": args.src, "targ": args.targ, "system": args.system, "seed": args.seed, "min_test": args.min_test,
               "with_regex": args.with_regex}
    if args.name == "nlrx-splits":
        from ..data.nlrx_splits import manifest_summary, parse_combo
        from ..models.loading import load_tokenizer, resolve_model_path

        tokenizer = load_tokenizer(resolve_model_path(args.tokenizer))
        options["count_tokens"] = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
        options["combo"] = parse_combo(args.combo) if args.combo else None
    path, rows = build(args.name, args.data_dir, args.out, **options)
    print(f"wrote {rows} rows to {path}")
    if args.name == "nlrx-splits":
        print(manifest_summary(json.loads((path / "manifest.json").read_text())))
    return 0


def cmd_analyze(args) -> int:
    from ..analysis.analyze import analyze_config, run_analysis

    flags = {"dataset": args.data, "split": args.split, "max_examples": args.max_examples, "output_dir": args.out,
             "layer": args.layer, "predictors": args.predictors, "poolings": args.pooling,
             "batch_size": args.batch_size, "data_dir": args.data_dir,
             "probes": False if args.no_probes else None, "tsne": False if args.no_tsne else None}
    report = run_analysis(analyze_config(args.spec, args.model or [], flags))
    print(report.read_text())
    print(f"written: {report.parent}/ geometry.json, report.md, *.png")
    return 0
