"""geometry.json, report.md and the PNG plots of ``lmjepa analyze``."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_json, atomic_write_text

COLUMNS = [  # (key, header, format)
    ("spectral_entropy", "spec. entropy", "{:.3f}"),
    ("effective_rank", "eff. rank", "{:.1f}"),
    ("stable_rank", "stable rank", "{:.2f}"),
    ("rankme", "RankMe", "{:.1f}"),
    ("alignment", "alignment ↓", "{:.3f}"),
    ("uniformity", "uniformity ↓", "{:.3f}"),
    ("semantic_probe", "semantic probe", "{:.3f}"),
    ("token_probe", "token probe", "{:.3f}"),
    ("probe_gap", "probe gap", "{:+.3f}"),
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def geometry_table(results: dict[str, dict], pooling: str) -> str:
    """Markdown table: one row per model, the metrics of one pooling."""
    cols = [c for c in COLUMNS if any(c[0] in r["poolings"].get(pooling, {}) for r in results.values())]
    lines = ["| model | " + " | ".join(h for _, h, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, r in results.items():
        m = r["poolings"].get(pooling, {})
        lines.append(f"| {label} | " + " | ".join(fmt.format(m[k]) if k in m else "" for k, _, fmt in cols) + " |")
    return "\n".join(lines)


def text_code_table(results: dict[str, dict], pooling: str) -> str:
    """Markdown table of the LLM-JEPA Text→Code analyses for one pooling."""
    lines = ["| model | cos(Text, Code) | cos(Text, other rows' Code) | retrieval top-1 % | lstsq residual ‖TX − C‖_F | "
             "relative | held-out relative | σ₁ of Text − Code | Σ top-100 σ |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        a = r["text_code"].get(pooling)
        if a is None:
            continue
        sv = a["difference_singular_values"]
        retrieval = (f"{a['unmatched_cosine']:.3f} | {a['retrieval_top1']:.1f}" if "retrieval_top1" in a
                     else "– | –")  # results cached before paired_retrieval existed
        lines.append(f"| {label} | {a['text_code_cosine']:.3f} | {retrieval} | {a['lstsq_residual']:.3g} | "
                     f"{a['lstsq_relative']:.3f} | {a['lstsq_heldout_relative']:.3f} | {sv[0]:.3g} | {sum(sv):.3g} |")
    return "\n".join(lines)


def plot_spectra(results: dict[str, dict], poolings: list[str], path: Path) -> None:
    """σ_i/σ_1 of each model's centred embeddings, log scale, one panel per pooling."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(poolings), figsize=(3.6 * len(poolings), 3.2), squeeze=False)
    for ax, pooling in zip(axes[0], poolings):
        for label, r in results.items():
            spectrum = [v for v in r["poolings"][pooling]["spectrum"] if v > 1e-10]  # drop numerical zeros
            ax.semilogy(spectrum, label=label)
        ax.set_title(f"{pooling} pooling")
        ax.set_xlabel("index i")
    axes[0][0].set_ylabel("σ_i / σ_1")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alignment_uniformity(results: dict[str, dict], poolings: list[str], path: Path) -> None:
    """Scatter: uniformity (x) vs alignment (y); colour = model, marker = pooling (lower-left is better)."""
    plt = _pyplot()
    markers = dict(zip(poolings, "osD^v<>"))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for index, (label, r) in enumerate(results.items()):
        for pooling in poolings:
            m = r["poolings"][pooling]
            ax.scatter(m["uniformity"], m["alignment"], color=f"C{index}", marker=markers[pooling],
                       label=f"{label} · {pooling}")
    ax.set_xlabel("uniformity (t = 2) ↓")
    ax.set_ylabel("alignment (α = 2) ↓")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tsne(results: dict[str, dict], path: Path) -> None:
    """One t-SNE panel per model, coloured by label (Text vs Code on two-view data)."""
    plt = _pyplot()
    with_tsne = {label: r["tsne"] for label, r in results.items() if "tsne" in r}
    fig, axes = plt.subplots(1, len(with_tsne), figsize=(3.8 * len(with_tsne), 3.8), squeeze=False)
    for ax, (label, t) in zip(axes[0], with_tsne.items()):
        kinds = sorted(set(t["labels"]), key=str)
        for index, kind in enumerate(kinds):
            xy = [p for p, lab in zip(t["xy"], t["labels"]) if lab == kind]
            ax.scatter([p[0] for p in xy], [p[1] for p in xy], s=4, alpha=0.6, color=f"C{index}", label=str(kind))
        ax.set_title(f"{label} ({t['pooling']})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_difference_spectra(results: dict[str, dict], pooling: str, path: Path) -> None:
    """Top-100 singular values of Enc(Text) − Enc(Code) per model, log scale (LLM-JEPA Fig. 7)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, r in results.items():
        ax.semilogy(r["text_code"][pooling]["difference_singular_values"], label=label)
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(f"Enc(Text) − Enc(Code), {pooling} pooling")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_markdown(settings: dict, results: dict[str, dict]) -> str:
    poolings = settings["poolings"]
    two_view = settings["two_view"]
    first = next(iter(results.values()))
    lines = [
        "# Representation geometry",
        "",
        f"Data: `{settings['source']}` ({settings['split']}), n = {first['n']} rows"
        + (" × 2 views (Text, Code)" if two_view else "") + f"; layer {settings['layer']}; width D = {first['width']}.",
        "Labels for alignment and probes: " + ("text vs code." if two_view else "the dataset's labels."),
        "Metrics: Predict and Reconstruct Appendix D (singular values of the centred matrix; RankMe uncentred; "
        "alignment/uniformity on L2-normalised rows, α = t = 2; probes are 5-fold CV logistic regression, "
        "accuracy in [0, 1]; token probe target = most frequent non-special token of the row).",
        "",
        "Models: " + ", ".join(f"**{label}** = `{r['model']}`" for label, r in results.items()),
        "",
    ]
    for pooling in poolings:
        lines += [f"## {pooling} pooling", "", geometry_table(results, pooling), ""]
    if two_view:
        lines += ["## Text → Code (LLM-JEPA §A.6)", "",
                  "Least squares min_X ‖Enc(Text)·X − Enc(Code)‖_F on all rows (the paper's number), the same "
                  "divided by ‖C − mean C‖_F, and the relative error of a ridge map (RidgeCV) fitted on half the rows "
                  "and scored on the other half. With n ≤ D the in-sample fit is exact for any data; then read the "
                  "held-out column only.", ""]
        for pooling in poolings:
            lines += [f"**{pooling}**", "", text_code_table(results, pooling), ""]
    lines += ["Plots: `spectra.png`, `alignment_uniformity.png`"
              + (", `difference_spectra.png`" if two_view else "")
              + (", `tsne.png`" if any("tsne" in r for r in results.values()) else "") + "."]
    return "\n".join(lines) + "\n"


def write_report(settings: dict, results: dict[str, dict], out: Path) -> Path:
    """Write geometry.json, report.md and the PNGs into ``out``; return report.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "geometry.json", {"settings": settings, "models": results})
    poolings = settings["poolings"]
    plot_spectra(results, poolings, out / "spectra.png")
    plot_alignment_uniformity(results, poolings, out / "alignment_uniformity.png")
    if settings["two_view"]:
        pooling = "last" if "last" in poolings else poolings[0]
        plot_difference_spectra(results, pooling, out / "difference_spectra.png")
    if any("tsne" in r for r in results.values()):
        plot_tsne(results, out / "tsne.png")
    report = out / "report.md"
    atomic_write_text(report, render_markdown(settings, results))
    return report


def plot_training_curves(histories: dict[str, list[dict]], path: str | Path,
                         keys: tuple[str, ...] = ("mlm_loss", "jepa_loss", "effective_rank", "embedding_std")) -> Path | None:
    """One panel per logged key (x: optimizer step), one line per run, from Trainer ``log_history`` rows.

    Keys no run logged are left out; returns None (and writes nothing) when none is left.
    """
    keys = tuple(k for k in keys if any(k in row for h in histories.values() for row in h))
    if not keys:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, history in histories.items():
            points = [(row["step"], row[key]) for row in history if key in row and "step" in row]
            if points:
                ax.plot(*zip(*points), label=label)
        ax.set_title(key)
        ax.set_xlabel("step")
    axes[0][0].legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
