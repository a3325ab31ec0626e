"""Time the geometry metrics on N × D embeddings (default 2,000 × 576, SmolLM2-135M's width).

    python benchmarks/geometry_speed.py [--n 2000] [--d 576] [--repeats 5]

Prints the median wall time of each metric and of the whole set that ``lmjepa analyze`` computes
per pooling without probes and t-SNE (target: under 2 s on 2 CPU cores), plus the LLM-JEPA
Text→Code analyses on N/2 pairs. Embeddings are synthetic with a decaying spectrum (the shape
of real hidden states) and two labels.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from lmjepa.analysis import geometry as g
from lmjepa.analysis.analyze import measure


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=576)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(args.n, args.d)) * np.geomspace(10, 0.01, args.d)).astype(np.float32)
    labels = np.repeat(["text", "code"], [args.n // 2, args.n - args.n // 2])
    half = args.n // 2
    rows = [
        ("spectrum metrics (spectral entropy, eff. rank, stable rank, RankMe)", lambda: g.spectrum_metrics(z)),
        ("alignment (same-label pairs)", lambda: g.alignment(z, labels)),
        ("uniformity (t = 2, all pairs)", lambda: g.uniformity(z)),
        ("all six metrics, one pooling (measure, no probes)", lambda: measure(z, labels, probes=False)),
        (f"Text→Code least squares + held-out ridge ({half} pairs)", lambda: g.linear_map_error(z[:half], z[half:2 * half])),
        ("top-100 singular values of Text − Code", lambda: g.difference_singular_values(z[:half], z[half:2 * half])),
    ]
    print(f"# geometry metrics on {args.n} × {args.d} float32 embeddings, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats}\n")
    print("| computation | seconds |\n|---|---|")
    total = 0.0
    for name, fn in rows:
        seconds = timed(fn, args.repeats)
        if not name.startswith(("spectrum", "alignment", "uniformity")):
            total += seconds
        print(f"| {name} | {seconds:.3f} |")
    print(f"| **everything `lmjepa analyze` computes per pooling except probes and t-SNE** | **{total:.3f}** |")
    print(f"\ntarget < 2 s: {'met' if total < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
