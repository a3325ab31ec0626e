"""lmjepa audit: spec checks before training, the coupling statistics against scipy and exact counts, and an
end-to-end audit of a tiny model (sweep → corrected table, gradient coupling, geometry shifts, coupling)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from lmjepa.analysis.audit import AUDIT_GEOMETRY, check_spec, run_geometry
from lmjepa.cli.main import main
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import encode_dataset
from lmjepa.errors import ConfigError
from lmjepa.models.loading import load_model, load_tokenizer
from lmjepa.objectives.monitors import geometry_monitors
from lmjepa.stats.coupling import coupling, paired_shifts, permutation_spearman
from lmjepa.training.config import load_run_config
from lmjepa.training.run import load_examples

from conftest import assert_plot


def test_permutation_spearman_against_scipy_and_the_exact_null():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    rho, p = permutation_spearman(x, y, permutations=4000)
    assert rho == pytest.approx(stats.spearmanr(x, y)[0])
    assert p == pytest.approx(stats.spearmanr(x, y)[1], abs=0.05)  # the permutation and t approximations agree
    rho, p = permutation_spearman(np.arange(6), np.arange(6) ** 2, permutations=20000)
    assert rho == 1.0 and p == pytest.approx(2 / math.factorial(6), abs=0.0015)  # exactly 2 of 720 orders are as extreme
    assert math.isnan(permutation_spearman([1, 2], [3, 4])[0])


def test_paired_shifts_and_coupling_family():
    by_cell = {"ntp": {1: {"exact_match": 50, "u": 1.0}, 2: {"exact_match": 40, "u": 2.0}},
               "a": {1: {"exact_match": 55, "u": 1.5}, 2: {"exact_match": 41, "u": 2.1}},
               "b": {1: {"exact_match": 49, "u": 0.5}, 2: {"exact_match": 45, "u": 3.0}}}
    assert paired_shifts(by_cell, "ntp", "u") == {("a", 1): 0.5, ("a", 2): pytest.approx(0.1), ("b", 1): -0.5, ("b", 2): 1.0}
    result = coupling(by_cell, "ntp", "exact_match", ["u"], permutations=2000)
    assert result["family_size"] == 1 and result["rows"][0]["n"] == 4
    assert result["rows"][0]["rho"] == pytest.approx(stats.spearmanr([0.5, 0.1, -0.5, 1.0], [5, 1, -1, 5])[0])


def test_the_answer_lists_what_the_corrected_tests_found():
    from lmjepa.analysis.audit import answer
    from lmjepa.stats.compare import compare
    from lmjepa.stats.contrasts import contrast

    base = np.array([26.0, 28.0, 25.0, 27.5, 24.0])
    noise = np.array([0.5, -1.0, 1.5, -0.5, 0.0])
    cells = {"ntp": base, "up": base + 10 + noise, "down": base - 12 + noise[::-1], "same": base + noise[[1, 2, 0, 4, 3]]}
    rows = [{"cell": c, "seed": s, "metrics": {"exact_match": float(v[i])}}
            for c, v in cells.items() for i, s in enumerate([82, 23, 37, 84, 4])]
    result, pairs = compare(rows, "ntp", ["exact_match"]), contrast(rows, [("up", "same")], ["exact_match"])
    text = "\n".join(answer(result, pairs, "exact_match"))
    by_cell = {t["cell"]: t for t in result["tests"]}
    assert f"Beats `ntp` (one-sided): up +{by_cell['up']['delta']:.2f} pp (p " in text and "down -12" not in \
        text.split("Moves")[0]
    assert "two-sided): down -11.90 pp (p " in text and ", up +10.10 pp (p " in text
    assert "Factor contrasts that move it (two-sided): up vs same +10.00 pp (p " in text
    mde = by_cell["same"]["mde_one_sided"]
    assert f"other 1 test(s); gains smaller than their MDEs ({mde:.1f} to {mde:.1f} pp)" in text
    assert answer(compare([r for r in rows if r["cell"] in ("ntp", "same")], "ntp", ["exact_match"]),
                  contrast(rows, [], ["exact_match"]), "exact_match")[2:4] == [
        "- Beats `ntp` (one-sided): none.", "- Moves it either way against `ntp` (two-sided): none."]


def _spec(tmp_path, tiny_model_dir, data_dir, **audit) -> str:
    base = {"name": "tiny", "output_dir": "unused", "model": {"name": str(tiny_model_dir)}, "task": "nlrx-synth",
            "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 3},
            "jepa": {"predictors": 1, "grad_cosine_every": 1},
            "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 100,
                      "extra": {"disable_tqdm": True}},
            "eval": {"max_new_tokens": 4, "batch_size": 4}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"base": "base.yaml", "output_dir": str(tmp_path / "audit"), "seeds": [1, 2], "concurrency": 2,
            "cells": {"ntp": {"jepa.lbd": 0.0}, "llm-jepa": {"jepa.lbd": 1.0},
                      "stp": {"objectives": [{"name": "stp", "weight": 0.5}]}},
            "audit": {"baseline": "ntp", "family": ["exact_match"], "geometry_rows": 3, **audit}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(tmp_path / "spec.yaml")


def test_bad_specs_stop_before_training(tmp_path, tiny_model_dir, data_dir):
    for audit, message in [({"baseline": "nope"}, "audit.baseline 'nope' is not a cell"),
                           ({"family": []}, "audit.family is empty")]:
        with pytest.raises(ConfigError, match=message):
            check_spec(_spec(tmp_path, tiny_model_dir, data_dir, **audit))
    for contrasts, message in [("ntp", r"audit.contrasts must be a list of \[cell, reference\] pairs"),
                               ([["stp"]], r"audit.contrasts\[0\]: expected \[cell, reference\]"),
                               ([["stp", "ntp"], ["stp", "nope"]], r"audit.contrasts\[1\]: 'nope' is not a cell"),
                               ([["ntp", "ntp"]], r"pairs a cell with itself"),
                               ([["stp", "ntp"], ["stp", "ntp"]], r"audit.contrasts\[1\]: \['stp', 'ntp'\] is declared twice")]:
        with pytest.raises(ConfigError, match=message):
            check_spec(_spec(tmp_path, tiny_model_dir, data_dir, contrasts=contrasts))
    spec = yaml.safe_load(open(_spec(tmp_path, tiny_model_dir, data_dir)))
    for cell, message in [({"train.seed": 5}, "cell 'bad' sets train.seed"),
                          ({"jepa.lbdd": 1}, "cell 'bad': unknown config key 'jepa.lbdd'")]:
        spec["cells"]["bad"] = cell
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
        with pytest.raises(ConfigError, match=message):
            check_spec(tmp_path / "spec.yaml")
    assert not (tmp_path / "audit").exists()


def test_audit_end_to_end(tmp_path, tiny_model_dir, data_dir, capsys):
    spec = _spec(tmp_path, tiny_model_dir, data_dir, contrasts=[["stp", "llm-jepa"]])
    assert main(["audit", spec]) == 0
    out = tmp_path / "audit" / "audit"
    report = (out / "report.md").read_text()
    assert "Family: 2 tests" in report  # the declared family: 2 cells × exact_match, geometry apart
    # the declared contrast: stp against llm-jepa, its own family of 1, Δ from the store's rows
    (test,) = json.loads((out / "stats.json").read_text())["contrasts"]["holm"]["tests"]
    runs = {(r["cell"], r["seed"]): r["metrics"]["exact_match"] for r in
            map(json.loads, (tmp_path / "audit" / "results.jsonl").read_text().splitlines())}
    assert test["reference"] == "llm-jepa" and test["delta"] == pytest.approx(
        np.mean([runs["stp", s] - runs["llm-jepa", s] for s in (1, 2)]))
    assert "## Factor contrasts" in report and "Family: 1 tests (contrasts × metrics)" in report
    assert "## Answer (exact_match, holm within each family" in report.split("# Paired comparison")[0]
    shifts = json.loads((out / "stats.json").read_text())["geometry_shift"]
    assert len(shifts["tests"]) == 8 and "of 8 tests" in report  # its own family: 2 cells × 4 geometry metrics
    assert {t["metric"] for t in shifts["tests"]} == {"geometry_curvature", "geometry_anisotropy",
                                                      "geometry_uniformity", "geometry_rankme"}
    assert "Bonferroni over the same family" in report and "Coupling of geometry and exact_match" in report
    result = json.loads((out / "stats.json").read_text())
    assert set(result["holm"]["grad_cosine"]) == {"llm-jepa", "stp · stp"}  # each auxiliary's gradient cosine
    assert all(c["runs"] == 2 for c in result["holm"]["grad_cosine"].values())
    assert result["coupling"]["family_size"] == 4 and all(r["n"] == 4 for r in result["coupling"]["rows"])
    assert_plot(out / "deltas.png")
    for name in ("geometry_curvature", "geometry_anisotropy", "geometry_uniformity", "geometry_rankme"):
        assert_plot(out / f"coupling_{name}.png", min_pixels=150)
    # one run's geometry against an independent forward of its 3 test rows
    run = next((tmp_path / "audit" / "stp").glob("seed-1-*"))
    got = run_geometry(run, 3)
    config = load_run_config(run / "config.yaml")
    tokenizer = load_tokenizer(str(run / "model"))
    model = load_model(str(run / "model"), tokenizer).eval()
    batch = JEPACollator(tokenizer.pad_token_id)(encode_dataset(load_examples(config, "test"), tokenizer, [])[0])
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True).hidden_states[-1]
    expected = geometry_monitors(hidden, batch["spans"], batch["attention_mask"])
    assert got["geometry_curvature"] == pytest.approx(expected["geometry_curvature"], rel=1e-4)
    assert got["geometry_anisotropy"] == pytest.approx(expected["geometry_anisotropy"], rel=1e-4)
    # each run's geometry was computed as it finished, where its model was: the store's rows carry it
    stored = [json.loads(line) for line in (tmp_path / "audit" / "results.jsonl").read_text().splitlines()]
    assert all(r["metrics"]["geometry_rankme"] == run_geometry(r["config"]["output_dir"], 3)["geometry_rankme"]
               for r in stored)
    assert main(["geometry", str(tmp_path / "audit" / "nothing-here")]) == 2
    assert "no model/ to measure" in capsys.readouterr().err
    # the report keeps every row with its geometry beside it: a copy that outlives the models
    kept = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(kept) == 6 and all(set(AUDIT_GEOMETRY) <= set(r["metrics"]) for r in kept)
    (tmp_path / "kept.jsonl").write_text((out / "results.jsonl").read_text())
    before = (tmp_path / "audit" / "results.jsonl").read_text()
    assert main(["audit", spec, "--report-only"]) == 0  # the report again, nothing retrained
    assert (tmp_path / "audit" / "results.jsonl").read_text() == before
    # a partial store (one stp run left): the report says so, names the waiting cell, and tests the rest
    rows = [json.loads(line) for line in before.splitlines()]
    kept = [r for r in rows if r["cell"] != "stp" or r["seed"] == 1]
    (tmp_path / "audit" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["audit", spec, "--report-only"]) == 0
    report = (out / "report.md").read_text()
    assert "**Partial audit**: 1 of 2 cells" in report and "Waiting: stp" in report
    assert "Contrasts waiting for two paired seeds (the family above counts only the 0 ready of 1): stp vs llm-jepa" in report
    assert "Family: 1 tests" in report and "of 4 tests" in report  # llm-jepa × exact_match; × 4 geometry
    stp = next(r for r in kept if r["cell"] == "stp" and r["seed"] == 1)["metrics"]  # its one run is still shown
    assert f"| stp | {stp['exact_match']:.1f} ({stp['train_seconds']:.0f} s) |  |\n" in report  # seed 2: empty
    # a fresh checkout: no store, no models; the kept copy restores the audit, geometry and all
    shutil.rmtree(tmp_path / "audit")
    assert main(["audit", spec, "--report-only", "--restore", str(tmp_path / "kept.jsonl")]) == 0
    again = json.loads((out / "stats.json").read_text())
    for key in ("geometry_shift", "coupling", "holm", "contrasts"):  # as text: an undefined ρ is NaN, never equal to itself
        assert json.dumps(again[key], sort_keys=True) == json.dumps(result[key], sort_keys=True), key


@pytest.mark.parametrize("name", ["audit-nlrx-cpu", "audit-nlrx-llama1b"])
def test_the_audit_presets_are_valid(name):
    from pathlib import Path

    from lmjepa.pipeline.sweep import plan

    spec = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    settings = check_spec(spec)
    _, runs, _ = plan(spec)
    assert ["llm-jepa-official", "ntp-official"] in settings["contrasts"] and len(settings["contrasts"]) == 3
    assert settings["baseline"] == "ntp" and len(runs) == (13 if name.endswith("llama1b") else 12) * 5
    cells = {cell: config for cell, seed, config in runs if seed == 82}
    assert cells["llm-jepa-official"].data.train_prompt and not cells["llm-jepa-official"].data.train_eos
    assert cells["llm-jepa-chat"].jepa.view_format == "chat" and cells["llm-jepa-content"].jepa.view_format == "content"
    if name.endswith("llama1b"):
        assert cells["ntp"].model.lora == {"r": 16, "alpha": 32} and cells["ntp"].train.precision == "bf16"
