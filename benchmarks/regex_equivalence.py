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


def family() -> list[tuple[str, str, bool]]:
    """Issue 32's hard family: ``{n,}`` repeats of an alternation with ``.*`` against short classes and words,
    with the truth known by construction (reordered alternatives and an unrolled repeat are equivalent; a
    class, a word or a different count is not)."""
    pairs = []
    for n in range(2, 9):
        for word, other in (("dog", "truck"), ("ring", "lake")):
            a, b = f"[A-Za-z].*{word}.*", other
            base = f"(({a})|({b})){{{n},}}"
            pairs += [(base, "[A-Z]", False), (base, word, False), (base, "[0-9]", False),
                      (base, f"(({b})|({a})){{{n},}}", True),
                      (base, f"(({a})|({b})){{{n}}}(({a})|({b}))*", True),
                      (base, f"(({a})|({b})){{{n + 1},}}", False)]
    return pairs


def run_family(lines: list[str]) -> None:
    """Every family pair through ``regex.equivalent`` (5 s limit, cold cache); greenery's automata alone
    (the lazy search switched off, 60 s limit) re-check the pairs with n ≤ 3."""
    pairs = family()
    times, wrong, false_equivalent, undecided, checked = [], 0, 0, 0, 0
    for a, b, truth in pairs:
        regex.compile_regex.cache_clear()
        start = time.perf_counter()
        answer = regex.equivalent(a, b, timeout_s=5.0)
        times.append(time.perf_counter() - start)
        undecided += answer is None
        wrong += answer is not None and answer != truth
        false_equivalent += answer is True and not truth
        if re.search(r"\{[23],", a):
            saved, regex.SEARCH_PAIRS = regex.SEARCH_PAIRS, 0
            try:
                regex.compile_regex.cache_clear()
                stock = regex.equivalent(a, b, timeout_s=60.0)
            finally:
                regex.SEARCH_PAIRS = saved
            checked += 1
            wrong += stock is not None and stock != truth
    slowest = max(range(len(pairs)), key=times.__getitem__)
    lines += ["", f"family `(([A-Za-z].*W.*)|(V)){{n,}}`, n = 2..8 ({len(pairs)} pairs, {sum(t for *_, t in pairs)} "
              f"equivalent): decided within 5 s {len(pairs) - undecided} of {len(pairs)}, wrong {wrong}, "
              f"false-equivalent {false_equivalent}; {checked} pairs (n ≤ 3) re-checked by greenery's automata "
              f"alone; slowest pair {times[slowest]:.3f} s (`{pairs[slowest][0]}` vs `{pairs[slowest][1]}`)"]
    print(lines[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="targets per split")
    parser.add_argument("--baseline-rows", type=int, default=40, help="depth-split targets timed with greenery's reduce")
    parser.add_argument("--splits", default=str(cache_dir() / "data" / "nlrx-splits"))
    parser.add_argument("--out")
    parser.add_argument("--family-only", action="store_true", help="only the {n,} family (no splits needed)")
    args = parser.parse_args()
    if args.family_only:
        lines = []
        run_family(lines)
        if args.out:
            Path(args.out).write_text("\n".join(lines).strip() + "\n")
        return
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
    run_family(lines)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
