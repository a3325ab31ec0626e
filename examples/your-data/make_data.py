"""Write the example's two-view data: ``train.jsonl`` and ``test.jsonl``, one arithmetic expression per row in
two views, English (``text``) and the expression (``code``). Deterministic; standard library only.

    python examples/your-data/make_data.py      # rewrites both files (committed; no need to run it)

Your own data takes the same form, one JSON object per line: ``{"text": ..., "code": ...}`` (optionally
``"system"``), or the LLM-JEPA ``messages`` form (system / user / assistant).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
BINARY = {"+": ("the sum of {a} and {b}", "{a} plus {b}", "add {a} and {b}"),
          "-": ("the difference of {a} and {b}", "{a} minus {b}", "subtract {b} from {a}"),
          "*": ("the product of {a} and {b}", "{a} times {b}", "multiply {a} by {b}")}


def expression(rng: random.Random, depth: int, top: bool = True) -> tuple[str, str]:
    """(English, expression) of a random expression with ``depth`` operators over the numbers 0–12. Inner
    operations are noun phrases ("the sum of …"); the outermost may take any of its three wordings."""
    if depth == 0:
        n = rng.randrange(len(WORDS))
        return WORDS[n], str(n)
    op = rng.choice(sorted(BINARY))
    left_depth = rng.randrange(depth)
    (a, x), (b, y) = expression(rng, left_depth, False), expression(rng, depth - 1 - left_depth, False)
    x, y = (f"({x})" if left_depth else x), (f"({y})" if depth - 1 - left_depth else y)
    wording = rng.choice(BINARY[op]) if top else BINARY[op][0]
    return wording.format(a=a, b=b), f"{x}{op}{y}"


def rows(seed: int = 0, n: int = 800) -> list[dict]:
    """``n`` distinct rows with one to three operators."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        text, code = expression(rng, rng.choice((1, 2, 2, 3)))
        if text not in seen:
            seen.add(text)
            out.append({"text": text[0].upper() + text[1:] + ".", "code": code})
    return out


if __name__ == "__main__":
    data = rows()
    for name, part in (("train.jsonl", data[:600]), ("test.jsonl", data[600:])):
        (HERE / name).write_text("".join(json.dumps(row) + "\n" for row in part))
        print(f"{name}: {len(part)} rows")
