"""``lmjepa audit SPEC``: the JEPA audit's table for cells of factors and auxiliaries (issue 14).

An audit spec is a sweep spec (``pipeline/sweep.py``: base, cells, seeds, launcher…) plus::

    audit:
      baseline: ntp                  # the cell every other cell is compared with
      family: [exact_match]          # the metrics tested: the family is cells × these (its size is stated)
      geometry_rows: 200             # test rows each trained model embeds for the geometry shift (0: none)
      contrasts:                     # optional: [cell, reference] pairs for the factors (``stats.contrasts``)
        - [llm-jepa-official, ntp-official]

It runs the sweep (resumable: finished cells are never recomputed), then reports per cell: Δ vs the
baseline with a 95 % CI (t-interval at n ≤ 10 seeds), the single-test paired p, Bonferroni and Holm over the declared
family, d_z (``stats.compare``), the mean gradient cosine of each auxiliary with the NTP gradient, the
content/termination split, and the geometry shift of the cell's models against the baseline's (the
answer-trajectory curvature, anisotropy, uniformity and RankMe of ``AUDIT_GEOMETRY``: a family of its own,
tested two-sided, because a shift is a change, not a gain, and it must not dilute the task family's
correction); then the coupling
of each geometry shift with the task-metric shift over all runs (``stats.coupling``), one scatter plot each;
and the declared contrasts (each cell against its own reference, a family of its own, two-sided).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..training.spec import expand_cells, read_spec
from ..data.packing import JEPACollator
from ..data.views import encode_dataset
from ..errors import ConfigError, RunFolderError
from ..io import atomic_write_json, atomic_write_text
from ..models.loading import load_model, load_tokenizer
from ..objectives.base import content_mask
from ..objectives.monitors import anisotropy
from ..objectives.trajectory import trajectory_curvature
from ..stats.compare import compare, load_results, render_markdown
from ..stats.contrasts import contrast, render_contrasts
from ..stats.paired import format_p
from ..stats.coupling import coupling
from ..training.config import load_run_config
from ..training.run import load_examples
from . import geometry

AUDIT_GEOMETRY = ("geometry_curvature", "geometry_anisotropy", "geometry_uniformity", "geometry_rankme")


def check_spec(spec_path: str | Path) -> dict:
    """The ``audit:`` section of a spec, checked before anything trains. Raises ConfigError naming the cell
    and key: a missing baseline cell, an empty family, a cell with its own seed, an unknown override key."""
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    audit = spec.get("audit") or {}
    cells = expand_cells(spec)
    baseline = audit.get("baseline")
    if baseline not in cells:
        raise ConfigError(f"{spec_path}: audit.baseline {baseline!r} is not a cell; cells: {sorted(cells)}")
    if not audit.get("family"):
        raise ConfigError(f"{spec_path}: audit.family is empty; name the metrics to test (e.g. [exact_match])")
    # a sweep runs cells, not the base config's variants
    base = load_run_config(spec_path.parent / spec["base"], spec.get("overrides") or {}).without_variants()
    for cell, overrides in cells.items():
        if "train.seed" in (overrides or {}):
            raise ConfigError(f"{spec_path}: cell {cell!r} sets train.seed; every cell runs the spec's seeds")
        try:
            base.with_overrides(overrides or {})
        except ConfigError as err:
            raise ConfigError(f"{spec_path}: cell {cell!r}: {err}") from None
    return {"baseline": baseline, "family": list(audit["family"]),
            "geometry_rows": int(audit.get("geometry_rows", 200)),
            "contrasts": check_contrasts(audit.get("contrasts"), cells, spec_path)}


def check_contrasts(contrasts, cells: dict, spec_path: Path) -> list[list[str]]:
    """``audit.contrasts``: a list of ``[cell, reference]`` pairs of two different declared cells, each pair
    once. Raises ConfigError naming the item (``audit.contrasts[i]``) and what is wrong with it."""
    if contrasts is None:
        return []
    if not isinstance(contrasts, list):
        raise ConfigError(f"{spec_path}: audit.contrasts must be a list of [cell, reference] pairs, "
                          f"got {contrasts!r}")
    seen = set()
    for i, pair in enumerate(contrasts):
        where = f"{spec_path}: audit.contrasts[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(c, str) for c in pair)):
            raise ConfigError(f"{where}: expected [cell, reference], got {pair!r}")
        unknown = [c for c in pair if c not in cells]
        if unknown:
            raise ConfigError(f"{where}: {unknown[0]!r} is not a cell; cells: {sorted(cells)}")
        if pair[0] == pair[1] or tuple(pair) in seen:
            raise ConfigError(f"{where}: {pair!r} " + ("pairs a cell with itself" if pair[0] == pair[1]
                                                         else "is declared twice"))
        seen.add(tuple(pair))
    return [list(pair) for pair in contrasts]


@torch.no_grad()
def run_geometry(run_dir: str | Path, rows: int, batch_size: int = 16) -> dict[str, float]:
    """The geometry of a trained run's model on its first ``rows`` test rows (full sequences, last layer):
    ``geometry_curvature`` and ``geometry_anisotropy`` (as ``objectives.monitors``), and the uniformity and
    RankMe of each row's mean content state: floats, curvature in radians. Cached in
    ``run_dir/audit_geometry.json`` (``lmjepa geometry RUN``; a sweep run by the audit computes it as each
    run finishes). Raises RunFolderError if ``run_dir`` has no ``model/``, ValueError if ``rows`` < 2."""
    run_dir = Path(run_dir)
    cache = run_dir / "audit_geometry.json"
    if cache.is_file() and json.loads(cache.read_text()).get("rows") == rows:
        return json.loads(cache.read_text())["metrics"]
    if rows < 2:
        raise ValueError(f"rows must be ≥ 2 (uniformity needs pairs), got {rows}")
    if not (run_dir / "model").is_dir():
        raise RunFolderError(f"{run_dir}: no model/ to measure (an unfinished run, or its model was deleted)")
    config = load_run_config(run_dir / "config.yaml")
    tokenizer = load_tokenizer(str(run_dir / "model"))
    model = load_model(str(run_dir / "model"), tokenizer).eval()
    features, _ = encode_dataset(load_examples(config, "test")[:rows], tokenizer, [], config.data.max_length)
    collate = JEPACollator(tokenizer.pad_token_id)
    angles = counts = 0.0
    states, pooled = [], []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start:start + batch_size])
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True,
                       logits_to_keep=1).hidden_states[-1].float()
        sums, n = trajectory_curvature(hidden, batch["spans"][:, 2], batch["spans"][:, 3])  # the answer tokens
        angles, counts = angles + float(sums.sum()), counts + float(n.sum())
        content = content_mask(batch["spans"], batch["attention_mask"])
        states.append(hidden[content])
        pooled.append((hidden * content[..., None]).sum(1) / content.sum(1, keepdim=True).clamp(min=1))
    metrics = {"geometry_curvature": angles / max(counts, 1), "geometry_anisotropy": anisotropy(torch.cat(states)),
               "geometry_uniformity": geometry.uniformity(torch.cat(pooled).numpy()),
               "geometry_rankme": geometry.rankme(torch.cat(pooled).numpy())}
    atomic_write_json(cache, {"rows": rows, "metrics": metrics})
    return metrics


def _plot_coupling(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for row in result["rows"]:
        if not row["pairs"]:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
        for cell in sorted({p[0] for p in row["pairs"]}):
            points = np.array([[p[2], p[3]] for p in row["pairs"] if p[0] == cell])
            ax.scatter(points[:, 0], points[:, 1], label=cell, s=18)
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"Δ {row['metric']} vs baseline")
        ax.set_ylabel(f"Δ {result['task_metric']}")
        ax.set_title(f"ρ = {row['rho']:.2f}, p (Holm) = {row['p_corrected']:.3g}" if not math.isnan(row["rho"]) else "ρ undefined")
        ax.legend(fontsize=6)
        fig.tight_layout()
        name = f"coupling_{row['metric']}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


def audit_report(spec_path: str | Path, store: str | Path, out: str | Path) -> Path:
    """Write ``report.md``, ``stats.json``, ``deltas.png`` and the coupling plots into ``out`` from a finished
    (or partial) results store; returns the report path. Geometry is computed once per run folder, and
    ``out/results.jsonl`` keeps every row with its geometry: the models can go, and a fresh checkout
    resumes the audit with ``--restore out/results.jsonl``."""
    settings = check_spec(spec_path)
    spec = read_spec(spec_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = load_results(store)
    if settings["geometry_rows"]:  # a bar: each uncached run loads its model and embeds the test rows
        for row in tqdm(rows, desc="audit geometry", unit="run"):
            folder = Path(row["config"]["output_dir"])
            if (folder / "model").is_dir():  # else the row keeps the geometry it carries (e.g. restored)
                row["metrics"].update(run_geometry(folder, settings["geometry_rows"]))
    # the store's rows with their geometry: a copy that outlives the models (``lmjepa audit --restore``)
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    baseline_seeds = {int(r["seed"]) for r in rows if r["cell"] == settings["baseline"]}
    seeds = defaultdict(set)
    for row in rows:
        seeds[row["cell"]].add(int(row["seed"]))
    partial = sorted(c for c in seeds if c != settings["baseline"] and len(seeds[c] & baseline_seeds) < 2)
    readings = _readings_table(rows, list(expand_cells(spec)), settings["family"], spec.get("seeds") or [])
    stored, rows = rows, [r for r in rows if r["cell"] not in partial]  # cells without 2 paired seeds wait
    geometry_keys = [k for k in AUDIT_GEOMETRY if any(k in r["metrics"] for r in rows)]
    results = {method: compare(rows, settings["baseline"], settings["family"], method)
               for method in ("holm", "bonferroni")}
    # geometry shifts are not gains: their own family, two-sided, reported as a direction
    shifts = compare(rows, settings["baseline"], geometry_keys, "holm") if geometry_keys else None
    by_cell = defaultdict(dict)
    for row in rows:
        by_cell[row["cell"]][int(row["seed"])] = row["metrics"]
    couple = coupling(by_cell, settings["baseline"], settings["family"][0], geometry_keys)
    plots = _plot_coupling(couple, out) if geometry_keys else []
    from ..stats.compare import plot_deltas

    plot_deltas(results["holm"], out / "deltas.png")
    tasks = list(spec.get("evaluate_on") or [])
    evaluated = [r for r in rows if set(tasks) <= set(r.get("metrics_by_task") or {})]
    if tasks and settings["baseline"] in {r["cell"] for r in evaluated}:
        from ..stats.generalisation import gap_table

        results["holm"]["generalisation"] = gap_table(evaluated, settings["baseline"], settings["family"], tasks)
    declared = [c for c in expand_cells(spec) if c != settings["baseline"]]
    waiting = [c for c in declared if c not in {r["cell"] for r in rows}]
    status = ([f"**Partial audit**: {len(declared) - len(waiting)} of {len(declared)} cells have at least two seeds "
               f"paired with the baseline ({len(rows)} runs); the family below counts only those cells — the "
               f"declared family is {len(declared)} cells × {len(settings['family'])} metrics, so these corrections "
               f"are not yet the final ones. Waiting: {', '.join(waiting)}.", ""] if waiting else [])
    pairs = [p for p in settings["contrasts"] if len(seeds[p[0]] & seeds[p[1]]) >= 2]
    contrasts = {method: contrast(stored, pairs, settings["family"], method) for method in ("holm", "bonferroni")}
    lines = [*status, *answer(results["holm"], contrasts["holm"], settings["family"][0]),
             render_markdown(results["holm"]),
             "Bonferroni over the same family (same tests; only the correction differs):", "",
             "| cell | metric | p (t, 1-sided) | Bonferroni | decision |", "|---|---|---|---|---|"]
    for t in results["bonferroni"]["tests"]:
        decision = "**improves**" if t["reject_one_sided"] else "no evidence"
        lines.append(f"| {t['cell']} | {t['metric']} | {format_p(t['p_t_one_sided'])} | "
                     f"{format_p(t['p_t_one_sided_corrected'])} | {decision} |")
    lines += render_contrasts(contrasts["holm"], contrasts["bonferroni"])
    if len(pairs) < len(settings["contrasts"]):
        lines += ["", f"Contrasts waiting for two paired seeds (the family above counts only the {len(pairs)} ready "
                  f"of {len(settings['contrasts'])}): "
                  + ", ".join(f"{c} vs {r}" for c, r in settings["contrasts"] if [c, r] not in pairs) + "."]
    lines += _shift_table(shifts, settings["baseline"])
    if any(r["n"] for r in couple["rows"]):
        lines += ["", f"Coupling of geometry and {couple['task_metric']} over all paired runs (Spearman ρ of the "
                  f"shifts vs the baseline at the same seed; two-sided permutation p; {couple['correction']} over "
                  f"{couple['family_size']} geometry metrics):", "",
                  "| geometry metric | runs | ρ | p | p (corrected) |", "|---|---|---|---|---|"]
        lines += [f"| {r['metric']} | {r['n']} | {r['rho']:+.2f} | {r['p']:.3g} | {r['p_corrected']:.3g} |"
                  for r in couple["rows"]]
    lines += readings
    lines += ["", "![Δ per cell](deltas.png)", *[f"![coupling]({name})" for name in plots]]
    atomic_write_json(out / "stats.json", {"holm": results["holm"], "bonferroni": results["bonferroni"],
                                           "geometry_shift": shifts, "coupling": couple, "contrasts": contrasts,
                                           "settings": settings})
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"


def answer(baseline_result: dict, contrast_result: dict, metric: str) -> list[str]:
    """Markdown lines stating the audit's answer for ``metric`` (the family's first): the cells that beat the
    baseline (one-sided, corrected), the cells and contrasts that move it either way (two-sided, corrected),
    and the range of MDEs of the rest — read from the two families' tests, nothing recomputed."""
    tests = [t for t in baseline_result["tests"] if t["metric"] == metric]
    pairs = [t for t in contrast_result["tests"] if t["metric"] == metric]
    if not tests and not pairs:
        return []

    def listed(found, label, p_key="p_t_two_sided_corrected"):
        return ", ".join(f"{label(t)} {t['delta']:+.2f} pp (p {format_p(t[p_key])})" for t in found) or "none"

    gains = [t for t in tests if t["reject_one_sided"]]
    moved = [t for t in tests if t["reject_two_sided"]]
    shifted = [t for t in pairs if t["reject_two_sided"]]
    rest = [t for t in tests + pairs if not t["reject_two_sided"] and not t["reject_one_sided"]]
    mdes = [t["mde_one_sided"] for t in rest if not math.isnan(t.get("mde_one_sided", math.nan))]
    correction, alpha = baseline_result["correction"], baseline_result["alpha"]
    lines = [f"## Answer ({metric}, {correction} within each family, α = {alpha})",
             "", f"- Beats `{baseline_result['baseline']}` (one-sided): "
             + listed(gains, lambda t: t["cell"], "p_t_one_sided_corrected") + ".",
             f"- Moves it either way against `{baseline_result['baseline']}` (two-sided): "
             + listed(moved, lambda t: t["cell"]) + "."]
    if contrast_result["tests"]:
        lines.append("- Factor contrasts that move it (two-sided): "
                     + listed(shifted, lambda t: f"{t['cell']} vs {t['reference']}") + ".")
    if rest:
        lines.append(f"- No effect detected in the other {len(rest)} test(s)"
                     + (f"; gains smaller than their MDEs ({min(mdes):.1f} to {max(mdes):.1f} pp) could be missed."
                        if mdes else "."))
    return lines + [""]


def _shift_table(shifts: dict | None, baseline: str) -> list[str]:
    """Markdown lines of the geometry-shift family (two-sided, its own Holm): a direction, never a gain."""
    if not shifts or not shifts["tests"]:
        return []
    lines = ["", f"Geometry shift against `{baseline}` at the same seed (a change, not a gain: two-sided paired "
             f"t-test, Holm over its own family of {len(shifts['tests'])} tests; anisotropy up = states more alike, "
             "uniformity up = less uniform, RankMe down = fewer effective dimensions):", "",
             "| cell | metric | n | baseline | cell | Δ [95% CI] | d_z | p (t, 2-sided) | Holm | shift |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in shifts["tests"]:
        moved = ("**up**" if s["delta"] > 0 else "**down**") if s["reject_two_sided"] else "none detected"
        lines.append(f"| {s['cell']} | {s['metric']} | {s['n']} | {s['baseline_mean']:.3f} ± {s['baseline_sd']:.3f} "
                     f"| {s['cell_mean']:.3f} ± {s['cell_sd']:.3f} | {s['delta']:+.3f} [{s['ci_low']:+.3f}, "
                     f"{s['ci_high']:+.3f}] | {s['cohens_dz']:.2f} | {format_p(s['p_t_two_sided'])} | "
                     f"{format_p(s['p_t_two_sided_corrected'])} | {moved} |")
    return lines


def _readings_table(rows: list[dict], cells: list[str], family: list[str], order: list[int]) -> list[str]:
    """Markdown lines: every run in the store, per cell (declared order) and seed (the spec's order) — each
    family metric (in percent) and the training seconds — descriptive, paired or not (a partial audit shows
    what has run)."""
    by_cell = defaultdict(dict)
    for row in rows:
        by_cell[row["cell"]][int(row["seed"])] = row["metrics"]
    present = {seed for runs in by_cell.values() for seed in runs}
    seeds = [s for s in order if s in present] + sorted(present - set(order))
    if not seeds:
        return []
    lines = ["", f"Every run so far, per seed ({', '.join(map(str, seeds))}): "
             + " / ".join(family) + ", and training seconds (descriptive; the tests above pair by seed):", "",
             "| cell | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for cell in [c for c in cells if c in by_cell] + sorted(set(by_cell) - set(cells)):
        values = []
        for seed in seeds:
            m = by_cell[cell].get(seed)
            values.append(" / ".join(f"{m[k]:.1f}" if isinstance(m.get(k), (int, float)) else "–" for k in family)
                          + (f" ({m['train_seconds']:.0f} s)" if isinstance(m.get("train_seconds"), (int, float)) else "")
                          if m else "")
        lines.append(f"| {cell} | " + " | ".join(values) + " |")
    return lines
