"""Is semantic (DFA-equivalence) scoring decided on the OOD splits' targets, and how fast? (issue 15)

For each split's test targets (``lmjepa build-data nlrx-splits`` first), two pairs per target:
``(target)`` against ``target`` (equivalent, but not the same string, so the automata are built) and
``target`` against a perturbed copy (a repeat count, a word or a character changed). Each pair goes through
``lmjepa.evaluation.regex.equivalent`` with its 5 s limit, from a cold cache. Reported per split: the share
decided within the limit and the median time per pair; then, on the hardest split's first rows, the same
pairs with greenery's own ``Fsm.reduce`` (Brzozowski) in place of lmjepa's Moore minimisation, the automaton
construction otherwise the same, side by side (the ratio of total times, one process, interleaved).

    python benchmarks/regex_equivalence.py [--rows 300] [--baseline-rows 40] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from lmjepa.evaluation import regex
from lmjepa.paths import cache_dir

SPLITS = ("dedup_synth", "paraphrase", "depth", "length", "combo")


def perturb(target: str) -> str:
    """A small change: the first repeat count + 1, else the first word swapped, else one more character."""
    count = re.search(r"\{(\d+)", target)
    if count:
        return target[: count.start(1)] + str(int(count.group(1)) + 1) + target[count.end(1):]
    for word, other in (("dog", "truck"), ("truck", "ring"), ("ring", "lake"), ("lake", "dog")):
        if word in target:
            return target.replace(word, other, 1)
    return target + "a"


def time_pairs(pairs: list[tuple[str, str]]) -> tuple[list[float], int]:
    """Seconds per pair (cold cache) and the number decided (True/False within the limit)."""
    times, decided = [], 0
    for a, b in pairs:
        regex.compile_regex.cache_clear()
        start = time.perf_counter()
        answer = regex.equivalent(a, b, timeout_s=5.0)
        times.append(time.perf_counter() - start)
        decided += answer is not None
    return times, decided


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="targets per split")
    parser.add_argument("--baseline-rows", type=int, default=40, help="depth-split targets timed with greenery's reduce")
    parser.add_argument("--splits", default=str(cache_dir() / "data" / "nlrx-splits"))
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = ["| split | targets | pairs | decided within 5 s | median s/pair | max s/pair |", "|---|---|---|---|---|---|"]
    for split in SPLITS:
        path = Path(args.splits) / f"{split}_test.jsonl"
        targets = [json.loads(l)["messages"][-1]["content"] for l in path.read_text().splitlines()[: args.rows]]
        pairs = [(f"({t})", t) for t in targets] + [(t, perturb(t)) for t in targets]
        times, decided = time_pairs(pairs)
        lines.append(f"| {split} | {len(targets)} | {len(pairs)} | {100 * decided / len(pairs):.1f} % ({decided}) | "
                     f"{statistics.median(times):.4f} | {max(times):.2f} |")
        print(lines[-1], flush=True)
    # side by side on the hardest split: Moore minimisation (ours) vs greenery's Brzozowski reduce
    path = Path(args.splits) / "depth_test.jsonl"
    targets = [json.loads(l)["messages"][-1]["content"] for l in path.read_text().splitlines()[: args.baseline_rows]]
    pairs = [(f"({t})", t) for t in targets] + [(t, perturb(t)) for t in targets]
    ours_total = stock_total = 0.0
    stock_decided = ours_decided = 0
    original = regex.minimise
    for pair in pairs:  # interleaved, pair by pair
        times, decided = time_pairs([pair])
        ours_total, ours_decided = ours_total + times[0], ours_decided + decided
        regex.minimise = regex.Fsm.reduce  # the stock method inside the fast block: greenery as shipped
        try:
            times, decided = time_pairs([pair])
        finally:
            regex.minimise = original
        stock_total, stock_decided = stock_total + times[0], stock_decided + decided
    lines += ["", f"depth split, first {len(targets)} targets ({len(pairs)} pairs), side by side: Moore minimisation "
              f"{ours_total:.1f} s ({ours_decided} decided), greenery's Brzozowski reduce in its place "
              f"{stock_total:.1f} s ({stock_decided} decided within 5 s): {stock_total / max(ours_total, 1e-9):.1f}x"]
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
