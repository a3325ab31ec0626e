"""``lmjepa build-data nlrx-splits``: out-of-distribution splits of NL-RX (issue 15).

Every split is built from the LLM-JEPA files ``llm-jepa/{synth,turk}_{train,test}.jsonl``, whose rows are
aligned (row i of SYNTH and of TURK share the regex; TURK's description is a human paraphrase). Regexes
are compared after normalising whitespace, descriptions after normalising whitespace and case.

* ``dedup``: the SYNTH and TURK test sets without any row whose regex or description occurs in that
  corpus's training split (``dedup_synth_test.jsonl``, ``dedup_turk_test.jsonl``); train on the usual file.
* ``paraphrase``: the TURK descriptions of exactly the rows of ``dedup_synth_test`` (same regexes, human
  wording): against ``nlrx-dedup`` the only shift is the language. Train on SYNTH.
* ``depth``: all 10,000 SYNTH rows pooled; train on regexes whose parse tree (``regex_syntax.depth``)
  has depth ≤ d, test on depth > d, d the largest value leaving ≥ ``min_test`` test rows.
* ``length``: the same with the target's token count (the tokenizer given) and a threshold n.
* ``combo``: hold out operator compositions (``regex_syntax.compositions``): no training target contains
  any of them, every test target contains one. Default: the single composition with the fewest rows
  among those with ≥ ``min_test`` (on NL-RX-SYNTH: ``~`` over ``&``).

Pooled splits are shuffled with ``seed`` (a task's ``max_*_examples`` takes the first rows: a random
sample), and ``min_test`` rows from the end of each shuffled training side become an in-distribution test
set (``{split}_id_test.jsonl``, task ``nlrx-{split}-id``): rows whose regex and description occur nowhere else
on that side, so none leaks into training. The same models are then scored ID and OOD, and the
generalisation gap is measured, not assumed. Taking them from the end leaves every training prefix that
stops before them (a task's first 1,120 rows, say) as it was before that set existed. Everything is built
and checked in memory first; then each file is written atomically and ``manifest.json`` (definitions,
thresholds, sizes, distributions, removed overlaps) last.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ..io import atomic_write_json, atomic_write_jsonl
from .jsonl import DataError, iter_jsonl
from .regex_syntax import RegexSyntaxError, compositions, depth, parse_regex

SPLITS = ("dedup", "paraphrase", "depth", "length", "combo")


def _norm(text: str, lower: bool = False) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.lower() if lower else text


def _load(path: Path) -> list[dict]:
    """Rows of a messages JSONL file, each with ``where`` (file:line), ``text`` and ``regex``; the regex
    parsed (Raises DataError naming file:line if it does not parse in the dk.brics dialect)."""
    rows = []
    for where, record in iter_jsonl(path, "NL-RX file"):
        messages = record.get("messages") or []
        roles = {m.get("role"): m.get("content") for m in messages if isinstance(m, dict)}
        if not isinstance(roles.get("user"), str) or not isinstance(roles.get("assistant"), str):
            raise DataError(f"{where}: expected messages with a user and an assistant turn")
        try:
            tree = parse_regex(roles["assistant"])
        except RegexSyntaxError as err:
            raise DataError(f"{where}: the target regex does not parse in the dk.brics dialect: {err}") from None
        rows.append({"where": where, "record": record, "text": roles["user"], "regex": roles["assistant"],
                     "tree": tree})
    return rows


def _threshold(values: list[int], min_test: int, name: str) -> int:
    """The largest t with at least ``min_test`` values > t and at least one value ≤ t."""
    for t in sorted(set(values), reverse=True):
        if sum(v > t for v in values) >= min_test and any(v <= t for v in values):
            return t
    raise DataError(f"split {name!r}: no threshold leaves {min_test} held-out rows and a training set "
                    f"(values range {min(values)}..{max(values)})")


def _hold_out_in_distribution(rows: list[dict], size: int) -> tuple[list[dict], list[dict]]:
    """(training rows, ``size`` ID test rows): walking back from the end of the shuffled ``rows``, a row is held
    out when its regex and its description occur in no other row (normalised as for ``dedup``), so no ID test
    row leaks into training and every training prefix before the tail stays as it was. Raises DataError if
    fewer than ``size`` rows qualify."""
    keys = [(_norm(r["regex"]), _norm(r["text"], lower=True)) for r in rows]
    regexes, texts = Counter(k[0] for k in keys), Counter(k[1] for k in keys)
    held = set()
    for i in range(len(rows) - 1, -1, -1):
        if len(held) == size:
            break
        if regexes[keys[i][0]] == 1 and texts[keys[i][1]] == 1:
            held.add(i)
    if len(held) < size:
        raise DataError(f"only {len(held)} training-side rows have a regex and description of their own; "
                        f"asked for an in-distribution test set of {size}")
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def _pooled(name: str, rows: list[dict], test: list[bool], seed: int, min_test: int, extra: dict) -> dict:
    train_rows = [r for r, t in zip(rows, test) if not t]
    test_rows = [r for r, t in zip(rows, test) if t]
    if len(test_rows) < min_test or not train_rows:
        raise DataError(f"split {name!r}: {len(test_rows)} held-out rows and {len(train_rows)} training rows; "
                        f"asked for at least {min_test} held-out rows and a training set")
    if len(train_rows) <= 2 * min_test:
        raise DataError(f"split {name!r}: {len(train_rows)} training rows cannot also give an in-distribution "
                        f"test set of {min_test} rows")
    rng = random.Random(seed)
    rng.shuffle(train_rows)
    rng.shuffle(test_rows)
    train_rows, id_rows = _hold_out_in_distribution(train_rows, min_test)
    return {"files": {f"{name}_train.jsonl": train_rows, f"{name}_id_test.jsonl": id_rows,
                      f"{name}_test.jsonl": test_rows},
            "manifest": {**extra, "train": len(train_rows), "id_test": len(id_rows), "test": len(test_rows)}}


def build_splits(data_root: Path, count_tokens: Callable[[str], int], seed: int = 0, min_test: int = 300,
                 combo: list[tuple[str, str]] | None = None) -> tuple[dict[str, list[dict]], dict]:
    """All splits in memory: ({file name: rows}, manifest). Raises DataError naming the split whose held-out
    set is smaller than ``min_test``, or the file:line of a target that does not parse."""
    corpus = {f"{c}_{s}": _load(data_root / "llm-jepa" / f"{c}_{s}.jsonl")
              for c in ("synth", "turk") for s in ("train", "test")}
    files, manifest = {}, {"seed": seed, "min_test": min_test, "source": str(data_root / "llm-jepa"), "splits": {}}

    kept = {}
    for c in ("synth", "turk"):
        regexes = {_norm(r["regex"]) for r in corpus[f"{c}_train"]}
        texts = {_norm(r["text"], lower=True) for r in corpus[f"{c}_train"]}
        test = corpus[f"{c}_test"]
        regex_hit = [_norm(r["regex"]) in regexes for r in test]
        text_hit = [_norm(r["text"], lower=True) in texts for r in test]
        kept[c] = [i for i in range(len(test)) if not regex_hit[i] and not text_hit[i]]
        if len(kept[c]) < min_test:
            raise DataError(f"split 'dedup': {len(kept[c])} {c} test rows left; asked for at least {min_test}")
        files[f"dedup_{c}_test.jsonl"] = [test[i] for i in kept[c]]
        manifest["splits"][f"dedup-{c}"] = {
            "definition": f"{c} test rows whose regex (whitespace-normalised) and description (whitespace- and "
                          f"case-normalised) both do not occur in {c} train",
            "test": len(kept[c]), "removed": {"regex in train": sum(regex_hit), "description in train": sum(text_hit),
                                              "either": len(test) - len(kept[c])}}
    files["paraphrase_test.jsonl"] = [corpus["turk_test"][i] for i in kept["synth"]]
    manifest["splits"]["paraphrase"] = {
        "definition": "the TURK descriptions of exactly the rows of dedup_synth_test (same regexes, human "
                      "wording); train on synth_train", "test": len(kept["synth"])}

    pool = corpus["synth_train"] + corpus["synth_test"]
    for name, values, what, key in (("depth", [depth(r["tree"]) for r in pool], "parse-tree depth", "d"),
                                    ("length", [count_tokens(r["regex"]) for r in pool], "target tokens", "n")):
        cut = _threshold(values, min_test, name)
        split = _pooled(name, pool, [v > cut for v in values], seed, min_test, {
            "definition": f"SYNTH train+test pooled; train: {what} <= {cut}, test: {what} > {cut}", key: cut,
            "distribution": dict(sorted(Counter(values).items()))})
        files.update(split["files"])
        manifest["splits"][name] = split["manifest"]

    pairs = [compositions(r["tree"]) for r in pool]
    counts = Counter(p for ps in pairs for p in ps)
    if combo is None:
        enough = sorted((n_rows, p) for p, n_rows in counts.items() if n_rows >= min_test)
        if not enough:
            raise DataError(f"split 'combo': no operator composition occurs in {min_test} rows; name pairs")
        combo = [enough[0][1]]
    held = set(map(tuple, combo))
    split = _pooled("combo", pool, [bool(ps & held) for ps in pairs], seed, min_test, {
        "definition": "SYNTH train+test pooled; test: targets containing a held-out composition (outer operator "
                      "above inner operator), train: targets containing none",
        "held_out": [f"{outer} over {inner}" for outer, inner in sorted(held)],
        "composition_counts": {f"{o} over {i}": c for (o, i), c in counts.most_common()}})
    files.update(split["files"])
    manifest["splits"]["combo"] = split["manifest"]
    return files, manifest


def write_splits(out: Path, files: dict[str, list[dict]], manifest: dict) -> None:
    """Write every split file atomically, then ``manifest.json`` (its presence means the set is complete)."""
    for name, rows in files.items():
        atomic_write_jsonl(out / name, [r["record"] for r in rows])
    manifest["files"] = {name: len(rows) for name, rows in files.items()}
    atomic_write_json(out / "manifest.json", manifest)


def parse_combo(text: str) -> list[tuple[str, str]]:
    """``"~>&,{n,}>|"`` → [("~", "&"), ("{n,}", "|")]. Raises DataError on a malformed pair."""
    pairs = []
    for item in _split_pairs(text):
        outer, sep, inner = item.partition(">")
        if not sep or not outer or not inner:
            raise DataError(f"--combo: {item!r} is not OUTER>INNER (e.g. '~>&')")
        pairs.append((outer, inner))
    return pairs


def _split_pairs(text: str) -> list[str]:
    # commas also occur inside {n,} and {n,m}: split only on commas outside braces
    items, current, level = [], "", 0
    for char in text:
        level += (char == "{") - (char == "}")
        if char == "," and level == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [item for item in items + [current.strip()] if item]


def manifest_summary(manifest: dict) -> str:
    """One line per split: name, sizes, threshold or held-out pairs."""
    lines = []
    for name, info in manifest["splits"].items():
        sizes = ", ".join(f"{k} {info[k]}" for k in ("train", "id_test", "test") if k in info)
        detail = {"depth": f"d = {info.get('d')}", "length": f"n = {info.get('n')}",
                  "combo": f"held out: {', '.join(info.get('held_out', []))}"}.get(name, info.get("removed", ""))
        lines.append(f"{name}: {sizes}; {json.dumps(detail) if isinstance(detail, dict) else detail}")
    return "\n".join(lines)
