"""A run end to end: train (``lmjepa.training.run``), then evaluate, in one run folder; ``lmjepa train``,
``evaluate``, ``pretrain`` and ``inspect`` as one call each (the CLI parses, calls this, and prints).

The run folder (``output_dir``, rules in ``lmjepa.training.run_folder``) holds::

    config.yaml         the resolved configuration
    run.log             data counts, the training log, timings, errors
    checkpoint-N/       Trainer checkpoints while training (a killed run resumes from the last)
    model/              the final model + tokenizer (LoRA runs: adapters merged)
    runs/               TensorBoard logs
    predictions.jsonl   one row per evaluation example
    metrics.json        evaluation metrics, training summary, data counts, wall times

A run whose ``metrics.json`` exists is complete and is not recomputed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config import load_config
from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text
from ..models.loading import load_model, load_tokenizer
from ..training import run_folder
from ..training.config import RunConfig, load_run_config
from ..training.pretrain import pretrain
from ..training.pretrain_config import PretrainConfig
from ..training.run import (build_model_and_tokenizer, check_data, evaluation_data_dir, inspect_rows, load_examples,
                             model_path, resolved_views, train)
from ..evaluation.evaluate import evaluate_examples, rescore
from ..evaluation.report import comparison_table
from ..evaluation.tasks import METRICS, check_config

log = logging.getLogger("lmjepa")


def train_and_evaluate(config, force: bool = False) -> dict:
    """Train one run and evaluate it; return its metrics (also in ``metrics.json``).

    The task and its metric are checked first, then the data (before any model is loaded). Resumes
    from the last checkpoint; returns the stored metrics of a finished run unless ``force``
    (which removes stale results and checkpoints). Raises RunFolderError if ``output_dir`` holds a
    run of another config, ConfigError / DataError on bad input, NonFiniteLossError on a NaN loss.
    """
    task = check_config(config)
    model_path(config)  # a model not available offline, or an unfinished init_from run, stops here
    run_folder.check_writable(config.output_dir)
    if force or not (Path(config.output_dir) / "metrics.json").is_file():  # the data (file:line), before any write
        check_data(config)
    with run_folder.exclusive(config.output_dir):
        return _train_and_evaluate(config, task, force)


def _train_and_evaluate(config: RunConfig, task, force: bool) -> dict:
    """``train_and_evaluate`` while this process holds the run folder's lock."""
    finished = run_folder.prepare(config, force)
    if finished is not None:
        return finished
    out = Path(config.output_dir)
    with run_folder.run_log(out):
        # checked before training, not after (none for a pretraining stage: eval.skip)
        test_examples = None if config.eval.skip else load_examples(config, "test")
        trained = train(config)
        if trained is None:  # a non-main process under `accelerate launch`
            return {}
        if config.eval.skip:
            metrics = {"task": task.name, "metric": task.metric, "evaluated": False, "exact_match": None}
        else:
            metrics = evaluate_examples(trained.model, trained.tokenizer, test_examples, task, config.eval, out,
                                        evaluation_data_dir(config), model_dir=out / "model")
        metrics.update(trained.summary)
        run_folder.finish(out, metrics)
        if not config.eval.skip:
            key = METRICS[metrics["metric"]][0]
            log.info("metrics: %s=%s exact_match=%.2f%% n=%d", key, metrics.get(key), metrics["exact_match"],
                     metrics["n"])
        return metrics


def _save_metrics(out: Path, metrics: dict, merge: bool) -> dict:
    """Write ``out/metrics.json`` atomically — over the fields of the one already there if ``merge``
    (other fields, e.g. training times, are kept). Returns what was written."""
    if merge and (out / "metrics.json").exists():
        metrics = {**json.loads((out / "metrics.json").read_text()), **metrics}
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _target_config(target: Path, overrides: dict):
    """The config of a run folder (its ``config.yaml``) or of a config file, with overrides, checked."""
    config = load_run_config(target / "config.yaml" if target.is_dir() else target, overrides)
    return config, check_config(config)


def evaluate_target(target: str | Path, overrides: dict | None = None, out: str | Path | None = None) -> tuple[str, dict]:
    """``lmjepa evaluate``: evaluate a trained run folder (its ``model/``) or a config's base model as
    is (zero-shot). Returns ``(run name, metrics)``; writes ``predictions.jsonl`` and ``metrics.json``
    into ``out`` (default: the run folder, whose other metrics are kept). Raises ConfigError when a
    config is given without ``out``.
    """
    target = Path(target)
    config, task = _target_config(target, overrides or {})
    if not target.is_dir() and not out:
        raise ConfigError("lmjepa evaluate CONFIG needs --out DIR")
    # resolved before the data: a missing model is the first thing said
    model_dir = target / "model" if target.is_dir() else model_path(config)
    examples = load_examples(config, "test")  # data checked before the model loads
    if target.is_dir():
        tokenizer = load_tokenizer(str(target / "model"))
        model = load_model(str(target / "model"), tokenizer)
    else:
        model, tokenizer, _ = build_model_and_tokenizer(config)
    out = Path(out or target)
    metrics = evaluate_examples(model, tokenizer, examples, task, config.eval, out, evaluation_data_dir(config),
                                model_dir=model_dir)
    if target.is_dir():  # a trained run: its objective's λ and k describe the model
        metrics.update(name=config.name, lbd=config.llm_jepa_weight(), predictors=config.jepa.predictors)
    else:  # the config's base model as it is: no objective was applied, so no λ or k is recorded
        metrics.update(name=config.name, model=config.model.name, fine_tuned=False)
    return config.name, _save_metrics(out, metrics, merge=target.is_dir() and out == target)


def rescore_target(target: str | Path, overrides: dict | None = None, out: str | Path | None = None) -> tuple[str, dict]:
    """``lmjepa evaluate TARGET --rescore``: score ``out/predictions.jsonl`` again (the current metric
    and diagnostics), keeping the other fields of ``metrics.json``. Returns ``(run name, metrics)``.
    Raises ConfigError when a config is given without ``out``."""
    target = Path(target)
    config, task = _target_config(target, overrides or {})
    if not target.is_dir() and not out:
        raise ConfigError("lmjepa evaluate CONFIG --rescore needs --out DIR (the folder with predictions.jsonl)")
    out = Path(out or target)
    model_dir = target / "model" if target.is_dir() and (target / "model").is_dir() else None
    tokenizer = load_tokenizer(str(model_dir) if model_dir else model_path(config))
    metrics = rescore(out, task, config.eval, evaluation_data_dir(config), tokenizer=tokenizer)
    return config.name, _save_metrics(out, metrics, merge=True)


def train_variants(config_path: str | Path, overrides: dict, variants: list[str] | None = None,
                   force: bool = False) -> tuple[dict[str, dict], str | None]:
    """``lmjepa train``: load and check the config (task and metric before anything else), train and evaluate
    each variant (all by default; ``run_folder.run_variants``). Returns ``(metrics by run name, table)``: the
    Markdown comparison table, also written to ``output_dir/comparison.md`` when there are several variants;
    ``({}, None)`` on a non-main process under ``accelerate launch``. Raises ConfigError / DataError on bad
    input, RunFolderError as ``train_and_evaluate``."""
    config = load_run_config(config_path, overrides)
    check_config(config)
    results = run_folder.run_variants(config, train_and_evaluate, variants, force=force)
    if not all(results.values()):
        return {}, None
    table = comparison_table(results)
    if len(results) > 1:
        atomic_write_text(Path(config.output_dir) / "comparison.md", table)
    return results, table


def pretrain_variants(config_path: str | Path, overrides: dict, variants: list[str] | None = None,
                      force: bool = False) -> tuple[PretrainConfig, dict[str, dict]]:
    """``lmjepa pretrain``: load a ``PretrainConfig`` and pretrain each variant (``training.pretrain``).
    Returns ``(config, metrics by run name)`` (empty metrics on a non-main process)."""
    config = load_config(config_path, overrides, cls=PretrainConfig)
    return config, run_folder.run_variants(config, pretrain, variants, force=force)


def inspect(config_path: str | Path, overrides: dict, rows: int = 3) -> dict:
    """``lmjepa inspect``: ``{"objective": resolved terms (NTP first, with γ), "views": the requested and resolved
    view mode and why, "rows": the first ``rows`` training rows as the model sees them}``. Raises ConfigError /
    DataError on bad input."""
    config = load_run_config(config_path, overrides)
    check_config(config)
    examples = inspect_rows(config, rows)
    mode, why = resolved_views(config)
    views = {"requested": config.jepa.views, "mode": mode, "why": why, "format": config.jepa.view_format,
             "shared_view_prefix": config.jepa.shared_view_prefix}
    return {"objective": config.objective_terms(), "views": views, "rows": examples}
