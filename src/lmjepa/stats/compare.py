"""``lmjepa compare``: seed-paired comparison of every cell with a baseline cell, corrected over the family.

Results store: JSONL, one finished run per line, at least
``{"cell": str, "seed": int, "metrics": {"exact_match": float, ...}}`` (a sweep adds the resolved
config, its hash, the code version and wall time). The family is every (cell, metric) test
against the baseline; its size is stated in the report. Decisions use the one-sided paired t-test
(H1: cell > baseline, the LLM-JEPA protocol) after the chosen correction; two-sided p-values are
corrected and reported too.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from ..data.jsonl import DataError, iter_jsonl, read_rows
from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text
from .interaction import t_interval
from .paired import correct, format_p, minimum_detectable_effect, paired_comparison, seeds_needed
from .termination import decompose, render_lines


def load_results(path: str | Path) -> list[dict]:
    """Read a results store; a later row for the same run (cell, seed, config hash) replaces the earlier one
    (a sweep adds a run's row again when it evaluates it on more tasks). Raises DataError naming
    ``path:line`` on a malformed or incomplete row."""
    rows = {(row["cell"], row["seed"], row.get("config_hash")): row
            for row in read_rows(path, ("cell", "seed", "metrics"))}
    return list(rows.values())


def split_store(spec: str) -> tuple[str, str]:
    """``LABEL=PATH`` or ``PATH`` (label: the store's folder name; a path that exists is never split)."""
    label, sep, path = spec.partition("=")
    return (label, path) if sep and not Path(spec).exists() else (Path(spec).parent.name, spec)


def load_stores(stores: list[str], cells: list[str] | None = None) -> list[dict]:
    """The rows of one or several results stores, each given as ``PATH`` or ``LABEL=PATH``. With several
    stores, each row's cell becomes ``LABEL/cell`` (label: the given one, else the store's folder name), so
    cells of different stores pair by seed: e.g. the same cell trained in fp32 and in bf16. ``cells`` keeps
    only those (renamed) cells. Raises ConfigError on a repeated label or a named cell that no store has,
    DataError as ``load_results``."""
    labelled = [split_store(spec) for spec in stores]
    labels = [label for label, _ in labelled]
    if len(stores) > 1 and len(set(labels)) < len(labels):
        raise ConfigError(f"stores {stores} share a label; name each as LABEL=PATH")
    rows = []
    for label, path in labelled:
        for row in load_results(path):
            rows.append({**row, "cell": f"{label}/{row['cell']}"} if len(stores) > 1 else row)
    if cells:
        missing = sorted(set(cells) - {row["cell"] for row in rows})
        if missing:
            raise ConfigError(f"no cell {missing[0]!r} in {stores}; cells: {sorted({r['cell'] for r in rows})}")
        rows = [row for row in rows if row["cell"] in cells]
    return rows


def is_analysed(row: dict) -> bool:
    """Whether a store row is compared: a single-stage run, or the fine-tuning stage of a two-stage sweep
    (its pretraining rows are not evaluated)."""
    return row.get("stage", "finetune") == "finetune"


def runs_by_cell(rows: list[dict], metrics: list[str]) -> tuple[dict[str, dict[int, dict]], dict | None]:
    """cell → seed → metrics of the analysed rows (a later row for the same run wins), and for a nested
    design (rows with ``pretrain_seed``) the pretraining seeds' means and variance components (``nest``)."""
    rows = [row for row in rows if is_analysed(row)]
    if any("pretrain_seed" in r for r in rows):
        return nest(rows, metrics)
    by_cell = defaultdict(dict)
    for row in rows:
        by_cell[row["cell"]][int(row["seed"])] = row["metrics"]
    return by_cell, None


def paired_tests(by_cell: dict[str, dict[int, dict]], pairs: list[tuple[str, str]], metrics: list[str],
                 correction: str = "holm", alpha: float = 0.05) -> list[dict]:
    """One seed-paired test per (cell, reference) pair and metric, corrected over all of them (the family:
    pairs × metrics), one- and two-sided, with the MDE at α/family. Each test carries ``cell``,
    ``reference``, ``metric``, ``seeds``, ``unpaired_seeds`` and ``paired.PairedResult``'s fields.
    Raises DataError if a pair shares fewer than 2 seeds."""
    tests = []
    for cell, reference in pairs:
        seeds = sorted(set(by_cell[cell]) & set(by_cell[reference]))
        unpaired = sorted(set(by_cell[cell]) ^ set(by_cell[reference]))
        if len(seeds) < 2:
            raise DataError(f"cell {cell!r} shares {len(seeds)} seed(s) with {reference!r}; "
                            "a paired comparison needs at least 2")
        for metric in metrics:
            base = [by_cell[reference][s][metric] for s in seeds]
            values = [by_cell[cell][s][metric] for s in seeds]
            result = paired_comparison(base, values, alpha=alpha)
            tests.append({"cell": cell, "reference": reference, "metric": metric, "seeds": seeds,
                          "unpaired_seeds": unpaired, **result.to_dict()})
    if not tests:
        return tests
    for sided in ("one_sided", "two_sided"):
        reject, adjusted = correct([t[f"p_t_{sided}"] for t in tests], correction, alpha)
        for test, r, p in zip(tests, reject, adjusted):
            test[f"p_t_{sided}_corrected"] = p
            test[f"reject_{sided}"] = r
    for test in tests:  # at α/m (Bonferroni): Holm rejects at least as much, so this bounds Holm's from above
        test["mde_one_sided"] = minimum_detectable_effect(test["sd_delta"], test["n"], alpha / len(tests))
        test["seeds_for_observed_delta"] = seeds_needed(test["delta"], test["sd_delta"], alpha / len(tests))
    return tests


def compare(rows: list[dict], baseline: str, metrics: list[str], correction: str = "holm", alpha: float = 0.05) -> dict:
    """Paired statistics of each cell vs ``baseline`` for each metric, with family-wise correction.

    Runs are paired by seed; seeds present in only one of the two cells are listed, not used.
    Raises ConfigError if the baseline cell is absent, DataError if a cell shares fewer than 2 seeds with it.
    """
    by_cell, nested = runs_by_cell(rows, metrics)
    if baseline not in by_cell:
        raise ConfigError(f"baseline cell {baseline!r} not in results (cells: {sorted(by_cell)})")
    tests = paired_tests(by_cell, [(c, baseline) for c in sorted(by_cell) if c != baseline], metrics,
                         correction, alpha)
    coupling = {}  # cell (· term) -> mean ± sd over runs of each run's mean gradient cosine
    for cell, runs in sorted(by_cell.items()):
        keys = sorted({k for m in runs.values() for k in m if k.startswith("grad_cosine") and k.endswith("_mean")})
        for key in keys:
            values = [m[key] for m in runs.values() if m.get(key) is not None]
            term = key.removeprefix("grad_cosine").removesuffix("_mean").lstrip("_") or "llm-jepa"
            label = cell if key == "grad_cosine_mean" and len(keys) == 1 else f"{cell} · {term}"
            coupling[label] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1
                               else math.nan, "runs": len(values), **cosine_test(values)}
    testable = [label for label, c in coupling.items() if not math.isnan(c["p"])]
    if testable:  # Holm over the coupling rows: "it fights NTP" is a claim about the mean cosine, tested as one
        _, holm = correct([coupling[label]["p"] for label in testable], "holm", alpha)
        for label, p in zip(testable, holm):
            coupling[label]["holm"] = float(p)
    return {"baseline": baseline, "metrics": metrics, "correction": correction, "alpha": alpha,
            "family_size": len(tests), "tests": tests, "grad_cosine": coupling,
            "termination": decompose(by_cell, baseline), "nested": nested}


def nest(rows: list[dict], metrics: list[str]) -> tuple[dict[str, dict[int, dict]], dict]:
    """A nested design (pretraining seeds × fine-tuning seeds, rows with ``pretrain_seed``): each pretraining
    seed's metrics averaged over its fine-tuning seeds — the unit of pairing is the pretrained model — and
    per cell and metric the two variance components: ``finetune_sd`` (sd over fine-tuning seeds, pooled
    within pretraining seeds) and ``pretrain_sd`` (sd of the pretraining seeds' means).

    Raises DataError naming the cell and pretraining seed when the design is unbalanced (a pretraining seed
    lacks some fine-tuning seed) or a row lacks ``pretrain_seed``."""
    runs: dict[str, dict[int, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        if "pretrain_seed" not in row:
            raise DataError(f"cell {row['cell']!r} seed {row['seed']}: no pretrain_seed in a nested results store")
        runs[row["cell"]][int(row["pretrain_seed"])][int(row["seed"])] = row["metrics"]
    by_cell, components = {}, {}
    for cell, pretrained in runs.items():
        expected = sorted(set().union(*(set(f) for f in pretrained.values())))
        for pseed, finetuned in sorted(pretrained.items()):
            if sorted(finetuned) != expected:
                raise DataError(f"cell {cell!r} pretraining seed {pseed}: fine-tuning seeds {sorted(finetuned)}, "
                                f"others have {expected}; finish the sweep (a nested design must be balanced)")
        keys = {k for f in pretrained.values() for m in f.values() for k, v in m.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
        by_cell[cell] = {pseed: {k: float(np.mean([m[k] for m in f.values() if k in m])) for k in keys}
                         for pseed, f in pretrained.items()}
        for metric in metrics:
            within = [np.var([m[metric] for m in f.values()], ddof=1) for f in pretrained.values() if len(f) > 1]
            means = [by_cell[cell][p][metric] for p in pretrained]
            components[f"{cell} · {metric}"] = {
                "pretrain_seeds": len(pretrained), "finetune_seeds": len(expected),
                "finetune_sd": float(np.sqrt(np.mean(within))) if within else math.nan,
                "pretrain_sd": float(np.std(means, ddof=1)) if len(means) > 1 else math.nan}
    return by_cell, components


def _mde(test: dict) -> str:
    mde = test.get("mde_one_sided", math.nan)  # stores written before it existed lack it
    return "n/a" if math.isnan(mde) else f"{mde:.2f}"


def render_markdown(result: dict) -> str:
    """A paper-style table: mean ± sd per cell, Δ with its 95% CI (t-interval at n ≤ 10, BCa bootstrap above), raw and corrected p, decision."""
    a = result["alpha"]
    lines = [
        f"# Paired comparison against `{result['baseline']}`",
        "",
        f"Family: {result['family_size']} tests (cells × metrics), {result['correction']} correction at α = {a}. "
        "Decision: one-sided paired t-test (H1: cell > baseline) after correction.",
        "",
        "| cell | metric | n | baseline | cell | Δ [95% CI] | MDE | d_z | p (t, 1-sided) | corrected | "
        "p (t, 2-sided) | corrected | p (Wilcoxon, exact with ties, 2-sided) | decision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes, powerless = [], {}  # powerless: (non-zero pairs, smallest Wilcoxon p) -> the tests it applies to
    for t in result["tests"]:
        decision = "**improves**" if t["reject_one_sided"] else "no evidence"
        dz = "n/a" if math.isnan(t["cohens_dz"]) else f"{t['cohens_dz']:.2f}"
        lines.append(
            f"| {t['cell']} | {t['metric']} | {t['n']} | {t['baseline_mean']:.2f} ± {t['baseline_sd']:.2f} | "
            f"{t['cell_mean']:.2f} ± {t['cell_sd']:.2f} | {t['delta']:+.2f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}] | "
            f"{_mde(t)} | {dz} | {format_p(t['p_t_one_sided'])} | "
            f"{format_p(t['p_t_one_sided_corrected'])} | {format_p(t['p_t_two_sided'])} | "
            f"{format_p(t['p_t_two_sided_corrected'])} | "
            f"{format_p(t['p_wilcoxon_two_sided'])} | {decision} |"
        )
        if not t["wilcoxon_can_reject"]:
            key = (t["wilcoxon_nonzero"], t["wilcoxon_min_p_two_sided"])
            powerless.setdefault(key, []).append(f"{t['cell']} / {t['metric']}")
        if not t["reject_one_sided"] and t.get("seeds_for_observed_delta"):
            notes.append(f"- {t['cell']} / {t['metric']}: were the observed Δ ({t['delta']:+.2f}) the true gain, "
                         f"finding it 4 times in 5 at this noise would take ≈ {t['seeds_for_observed_delta']} seeds.")
        if t["unpaired_seeds"]:
            notes.append(f"- {t['cell']}: seeds {t['unpaired_seeds']} ran in only one of the two cells and are not used.")
    if result["tests"]:
        lines += ["", f"MDE: the minimum detectable effect, the smallest true Δ this design (n pairs, the observed "
                  f"sd of Δ) detects with 80 % power by the one-sided t-test at α/{result['family_size']} (Bonferroni, "
                  "so an upper bound for Holm's). A gain that large would be found 4 times in 5; a \"no evidence\" "
                  "says little about smaller ones. The sd is itself estimated from the n pairs."]
    for (nonzero, min_p), tests in sorted(powerless.items()):
        pairs = f"{nonzero} non-zero pair" + ("" if nonzero == 1 else "s")
        notes.append(f"- With {pairs} (ties dropped) the exact Wilcoxon test cannot go below p = {min_p:.4f}, so it "
                     f"can never reject at α = {a}: {', '.join(tests)}.")
    if notes:
        lines += ["", "Notes:", *sorted(set(notes))]
    if result.get("nested"):
        first = next(iter(result["nested"].values()))
        lines += ["", f"Nested design: {first['pretrain_seeds']} pretraining seeds × {first['finetune_seeds']} "
                  "fine-tuning seeds. Each pretraining seed's runs are averaged over its fine-tuning seeds, then "
                  "cells are paired by pretraining seed (n above = pretraining seeds): the gain is attributed to "
                  "pretraining, and fine-tuning noise is not counted as independent evidence.", "",
                  "| cell · metric | sd over fine-tuning seeds (pooled within pretraining seeds) | "
                  "sd of pretraining-seed means |", "|---|---|---|"]
        lines += [f"| {key} | {c['finetune_sd']:.2f} | {c['pretrain_sd']:.2f} |" for key, c in result["nested"].items()]
    if result.get("grad_cosine"):
        lines += ["", "Gradient coupling: cos(∇ term, ∇ NTP term) over trainable parameters, mean over the "
                  "logged steps of each run, then mean ± sd over runs (near 0: the auxiliary pulls in an "
                  "unrelated direction; negative: it fights the NTP loss). Against 0: the one-sample t-interval "
                  "over runs and its two-sided p, Holm over the rows of this table.", "",
                  "| cell | runs | grad cosine, mean ± sd | 95% t-interval | p (t, 2-sided) | Holm |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {cell} | {c['runs']} | {c['mean']:+.3f} ± {c['sd']:.3f} | "
                  + (f"[{c['low']:+.3f}, {c['high']:+.3f}] | {format_p(c['p'])} | {format_p(c.get('holm'))} |"
                     if not math.isnan(c.get("p", math.nan)) else "— | — | — |")
                  for cell, c in result["grad_cosine"].items()]
    lines += render_lines(result.get("termination") or {}, result["baseline"])
    text = "\n".join(lines) + "\n"
    if result.get("generalisation"):
        from .generalisation import render_gaps

        text += render_gaps(result["generalisation"])
    return text


def cosine_test(values) -> dict:
    """One-sample t-test of per-run mean gradient cosines against 0 (``interaction.t_interval``): ``{"low",
    "high", "p"}``, the 95 % t-interval and two-sided p (NaN with fewer than 2 runs; p NaN with zero spread)."""
    result = t_interval(values)
    return {"low": result["ci_low"], "high": result["ci_high"], "p": result["p"]}


def plot_deltas(result: dict, path: str | Path) -> None:
    """PNG: Δ per (cell, metric) with its 95% CI (``ci_method``); filled markers: significant after the
    correction, one-sided (improves) or two-sided (either direction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = result["tests"]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.5 + 0.45 * len(tests))))
    for y, t in enumerate(tests):
        ax.errorbar(t["delta"], y, xerr=[[t["delta"] - t["ci_low"]], [t["ci_high"] - t["delta"]]], fmt="o",
                    color="black", capsize=3, mfc="black" if t["reject_one_sided"] or t.get("p_t_two_sided_corrected", 1.0) < result["alpha"] else "white")
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(tests)), [f"{t['cell']} · {t['metric']}" for t in tests])
    methods = ", ".join(sorted({t.get("ci_method", "t") for t in tests}))
    ax.set_xlabel(f"Δ vs {result['baseline']}, 95% CI ({methods})\nfilled: significant after {result['correction']} (α = {result['alpha']})")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the two-line x label is never clipped
    plt.close(fig)


def k_lambda_grid(rows: list[dict], metric: str) -> tuple[list[int], list[float], np.ndarray] | None:
    """Mean ``metric`` over seeds for each (k, λ) in the rows' configs (LLM-JEPA Fig. 3 layout).

    Returns (ks, λs, means of shape (len(ks), len(λs)), NaN where a pair was not run), or None when
    the rows do not span at least two k and two λ values.
    """
    cells: dict[tuple[int, float], list[float]] = defaultdict(list)
    for row in rows:
        jepa = (row.get("config") or {}).get("jepa")
        if jepa and row["metrics"].get(metric) is not None and is_analysed(row):
            cells[(int(jepa["predictors"]), float(jepa["lbd"]))].append(float(row["metrics"][metric]))
    ks, lambdas = sorted({k for k, _ in cells}), sorted({lbd for _, lbd in cells})
    if len(ks) < 2 or len(lambdas) < 2:
        return None
    means = np.full((len(ks), len(lambdas)), np.nan)
    for (k, lbd), values in cells.items():
        means[ks.index(k), lambdas.index(lbd)] = np.mean(values)
    return ks, lambdas, means


def plot_k_lambda(grid, metric: str, path: str | Path) -> None:
    """PNG heatmap of mean ``metric`` over (k, λ), each cell annotated with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks, lambdas, means = grid
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lambdas), 1.0 + 0.6 * len(ks)))
    image = ax.imshow(means, cmap="viridis", aspect="auto")
    for i, j in np.ndindex(means.shape):
        if not np.isnan(means[i, j]):
            ax.text(j, i, f"{means[i, j]:.1f}", ha="center", va="center", color="white", fontsize=9)
    ax.set_xticks(range(len(lambdas)), [f"{x:g}" for x in lambdas])
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("λ")
    ax.set_ylabel("k (predictor tokens)")
    fig.colorbar(image, ax=ax, label=f"mean {metric} over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the two-line x label is never clipped
    plt.close(fig)


def write_report(result: dict, out_dir: str | Path, rows: list[dict] | None = None,
                 extra: list[str] | tuple[str, ...] = ()) -> Path:
    """Write ``report.md``, ``stats.json``, ``deltas.png`` and, when ``rows`` span a (k, λ) grid,
    ``k_lambda.png`` into ``out_dir`` (text written atomically, once). ``extra``: Markdown lines appended to
    the report (e.g. ``analysis.predictions.section``). Returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "stats.json", result)
    plot_deltas(result, out / "deltas.png")
    figures = "\n![Δ per cell](deltas.png)\n"
    grid = k_lambda_grid(rows or [], result["metrics"][0])
    if grid is not None:
        plot_k_lambda(grid, result["metrics"][0], out / "k_lambda.png")
        figures += "\n![mean over seeds per (k, λ)](k_lambda.png)\n"
    atomic_write_text(out / "report.md", render_markdown(result) + figures + "".join(f"{line}\n" for line in extra))
    return out / "report.md"


def mcnemar_runs(run_a: str | Path, run_b: str | Path, key: str = "exact_match") -> dict:
    """McNemar's exact test on the per-example ``key`` correctness of two run folders' ``predictions.jsonl``.

    Returns ``{"b", "c", "p"}`` (``paired.mcnemar``). Raises DataError naming file and line for a
    missing file or a row without ``key``, or if the runs cover different numbers of rows.
    """
    from .paired import mcnemar

    columns = []
    for run in (run_a, run_b):
        values = []
        for where, row in iter_jsonl(Path(run) / "predictions.jsonl", "predictions file"):
            if not isinstance(row, dict) or not isinstance(row.get(key), bool):
                raise DataError(f"{where}: a predictions row needs a true/false {key!r}")
            values.append(row[key])
        columns.append(values)
    if len(columns[0]) != len(columns[1]):
        raise DataError(f"{run_a} and {run_b} cover {len(columns[0])} and {len(columns[1])} examples; "
                        "McNemar pairs the same examples")
    return mcnemar(*columns)
