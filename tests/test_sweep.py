"""lmjepa sweep: every (cell, seed) once, results appended atomically, nothing recomputed; then compare."""

import json
from pathlib import Path

import yaml

from lmjepa.cli.main import main
from lmjepa.pipeline.sweep import config_hash, expand_cells, plan


def _spec(tmp_path, tiny_model_dir, data_dir) -> str:
    base = {
        "name": "tiny", "output_dir": "unused", "model": {"name": str(tiny_model_dir)},
        "task": "nlrx-synth", "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 3},
        "jepa": {"predictors": 1},
        "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 100,
                  "extra": {"disable_tqdm": True}},
        "eval": {"max_new_tokens": 4, "batch_size": 4},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"base": "base.yaml", "output_dir": str(tmp_path / "sweep"), "seeds": [1, 2], "concurrency": 2,
            "cells": {"ntp": {"jepa.lbd": 0.0}, "llm-jepa": {"jepa.lbd": 1.0}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(tmp_path / "spec.yaml")


def test_grid_cells_and_hashes(tmp_path, tiny_model_dir, data_dir):
    cells = expand_cells({"grid": {"jepa.lbd": [0.5, 1.0], "jepa.predictors": [0, 1]}, "cells": {"ntp": {"jepa.lbd": 0}}})
    assert list(cells) == ["ntp", "lbd=0.5,predictors=0", "lbd=0.5,predictors=1", "lbd=1.0,predictors=0",
                           "lbd=1.0,predictors=1"]
    _, runs, concurrency = plan(_spec(tmp_path, tiny_model_dir, data_dir))
    assert concurrency == 2 and [(c, s) for c, s, _ in runs] == [("ntp", 1), ("llm-jepa", 1), ("ntp", 2), ("llm-jepa", 2)]
    hashes = {config_hash(cfg) for _, _, cfg in runs}
    assert len(hashes) == 4  # seed and λ are part of the hash; the output folder is not
    assert runs[0][2].train.seed == 1 and runs[1][2].jepa.lbd == 1.0
    # Stating a default explicitly, or a new field arriving with its default, leaves the hash unchanged.
    config = runs[0][2]
    assert config_hash(config.with_overrides({"jepa.distance": "cosine"})) == config_hash(config)
    assert config_hash(config.with_overrides({"jepa.distance": "l2"})) != config_hash(config)


def test_sweep_runs_once_resumes_feeds_compare_and_evaluates_another_task(tmp_path, tiny_model_dir, data_dir, capsys):
    spec = _spec(tmp_path, tiny_model_dir, data_dir)
    assert main(["sweep", spec, "--cells", "nope"]) == 2 and "no cell 'nope'" in capsys.readouterr().err
    assert main(["sweep", spec, "--cells", "llm-jepa"]) == 0  # one cell first: both seeds, nothing else
    store = tmp_path / "sweep" / "results.jsonl"
    assert sorted((r["cell"], r["seed"]) for r in map(json.loads, store.read_text().splitlines())) == [
        ("llm-jepa", 1), ("llm-jepa", 2)]
    assert main(["sweep", spec]) == 0  # then the rest
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert sorted((r["cell"], r["seed"]) for r in rows) == [("llm-jepa", 1), ("llm-jepa", 2), ("ntp", 1), ("ntp", 2)]
    assert all(r["code_version"].startswith("lmjepa") and r["wall_seconds"] > 0 and "exact_match" in r["metrics"]
               for r in rows)

    before = store.read_text()
    assert main(["sweep", spec]) == 0  # nothing to do: no run is recomputed
    assert store.read_text() == before and "0 to run" in capsys.readouterr().out

    # A sweep killed after a run finished but before its line was written: the run is reused, not redone.
    store.write_text("".join(line + "\n" for line in before.splitlines()[:3]))
    model_file = next((tmp_path / "sweep").glob("*/seed-*-*/model/model.safetensors"))
    mtime = model_file.stat().st_mtime
    assert main(["sweep", spec]) == 0
    assert len(store.read_text().splitlines()) == 4 and model_file.stat().st_mtime == mtime

    assert main(["compare", str(store), "--baseline", "ntp", "--out", str(tmp_path / "cmp")]) == 0
    assert "Family: 1 tests" in (tmp_path / "cmp" / "report.md").read_text()
    _evaluate_on_reuses_finished_models_and_feeds_the_gap_report(tmp_path, spec, capsys)


def _evaluate_on_reuses_finished_models_and_feeds_the_gap_report(tmp_path, spec_path, capsys):
    """The finished sweep above, evaluated on a second task (part of the test above: it trains nothing)."""
    capsys.readouterr()
    store = tmp_path / "sweep" / "results.jsonl"
    models = sorted((tmp_path / "sweep").glob("*/seed-*-*/model/model.safetensors"))
    mtimes = [m.stat().st_mtime for m in models]
    own = {m: (m.parent.parent / "metrics.json").read_text() for m in models}  # each run's own metrics
    assert main(["sweep", spec_path, "--evaluate-on", "nlrx-turk"]) == 0  # the flag, then the spec key below
    assert "0 to run and 4 to evaluate on ['nlrx-turk']" in capsys.readouterr().out
    assert [m.stat().st_mtime for m in models] == mtimes  # no model trained again
    assert all((m.parent.parent / "metrics.json").read_text() == text for m, text in own.items())  # untouched
    from lmjepa.stats.compare import load_results

    rows = load_results(store)
    assert len(rows) == 4 and all(r["metrics_by_task"]["nlrx-turk"]["n"] == 3 for r in rows)
    for row in rows:  # the task's metrics are the run folder's eval/<task>/metrics.json
        saved = json.loads((Path(row["config"]["output_dir"]) / "eval" / "nlrx-turk" / "metrics.json").read_text())
        assert saved["exact_match"] == row["metrics_by_task"]["nlrx-turk"]["exact_match"]
    before = store.read_text()
    spec = yaml.safe_load(open(spec_path))
    spec["evaluate_on"] = ["nlrx-turk"]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", spec_path]) == 0 and store.read_text() == before  # nothing left to do
    assert main(["compare", str(store), "--baseline", "ntp", "--task", "nlrx-turk", "--out", str(tmp_path / "c")]) == 0
    assert "## Generalisation" in (tmp_path / "c" / "report.md").read_text()


def test_disk_warning_measures_a_finished_run_and_compares_with_free_space(tmp_path, monkeypatch):
    from collections import namedtuple

    from lmjepa.pipeline import sweep

    run = tmp_path / "runs" / "ntp" / "seed-82-abc"
    (run / "model").mkdir(parents=True)
    (run / "model" / "weights.bin").write_bytes(b"x" * 3_000_000)   # 3 MB model
    (run / "metrics.json").write_text("{}")                           # 2 bytes
    unfinished = tmp_path / "runs" / "ntp" / "seed-23-def"             # no metrics.json: never measured
    unfinished.mkdir()
    done = {("ntp", 23, "def"): {"config": {"output_dir": str(unfinished)}},
            ("ntp", 82, "abc"): {"config": {"output_dir": str(run)}}}
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(sweep.shutil, "disk_usage", lambda path: Usage(0, 0, 10_000_000))   # 10 MB free
    assert sweep.disk_warning(tmp_path / "runs", done, 3) is None           # 3 × 3.000002 MB fits
    warning = sweep.disk_warning(tmp_path / "runs", done, 4)                 # 12.000008 MB does not
    assert warning is not None and "4 runs to go × 0.00 GB" in warning and str(run) in warning
    assert sweep.disk_warning(tmp_path / "runs", done, 0) is None
    assert sweep.disk_warning(tmp_path / "runs", {("ntp", 23, "def"): done[("ntp", 23, "def")]}, 9) is None
    # a store folder that does not exist yet is probed at its nearest existing parent
    assert sweep.disk_warning(tmp_path / "new" / "store", done, 4) is not None


def test_restore_brings_a_kept_copy_back_so_a_fresh_checkout_retrains_nothing(tmp_path, tiny_model_dir, data_dir,
                                                                               capsys):
    import pytest

    from lmjepa.errors import DataError
    from lmjepa.pipeline.sweep import restore_results

    spec = _spec(tmp_path, tiny_model_dir, data_dir)
    _, runs, _ = plan(spec)
    rows = [{"cell": c, "seed": s, "config_hash": config_hash(cfg), "config": cfg.to_dict(),
             "metrics": {"exact_match": 10.0 * i}} for i, (c, s, cfg) in enumerate(runs)]
    stale = {**rows[0], "config_hash": "0" * 16}  # an earlier definition of the cell: never added
    copy = tmp_path / "kept" / "results.jsonl"
    copy.parent.mkdir()
    copy.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:3], stale]))
    store = tmp_path / "sweep" / "results.jsonl"
    assert restore_results(spec, copy) == {"added": 3, "merged": 0, "skipped": 1}
    assert [json.loads(line)["metrics"] for line in store.read_text().splitlines()] == [r["metrics"] for r in rows[:3]]
    # a second copy: the store's row wins, metrics only the copy has are merged in; the 4th run is added
    extra = {**rows[1], "metrics": {"exact_match": 99.0, "geometry_rankme": 3.5}}
    copy.write_text(json.dumps(extra) + "\n" + json.dumps(rows[3]) + "\n")
    assert restore_results(spec, copy) == {"added": 1, "merged": 1, "skipped": 0}
    restored = {(r["cell"], r["seed"]): r["metrics"] for r in map(json.loads, store.read_text().splitlines())}
    assert restored[(rows[1]["cell"], rows[1]["seed"])] == {"exact_match": 10.0, "geometry_rankme": 3.5}
    assert len(restored) == 4 and restore_results(spec, copy) == {"added": 0, "merged": 0, "skipped": 0}
    # every run is known by its row: the sweep trains nothing and makes no run folder
    assert main(["sweep", spec, "--restore", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "0 rows added, 0 merged" in out and "4 already in" in out and "0 to run" in out
    assert not list((tmp_path / "sweep").glob("*/seed-*"))
    # bad copies: the file and line
    copy.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"cell": "ntp", "seed": 1}) + "\n")
    with pytest.raises(DataError, match=r"results.jsonl:2: missing 'config_hash'"):
        restore_results(spec, copy)
    with pytest.raises(DataError, match="not found"):
        restore_results(spec, tmp_path / "nowhere.jsonl")
    assert main(["sweep", spec, "--restore", str(tmp_path / "nowhere.jsonl")]) == 2
    # a damaged store (a line cut short): the sweep stops before any training, naming the store's line
    store.write_text(store.read_text() + '{"cell": "ntp", "se\n')
    capsys.readouterr()
    assert main(["sweep", spec]) == 2 and "sweep/results.jsonl:5:" in capsys.readouterr().err
    assert not list((tmp_path / "sweep").glob("*/seed-*"))
