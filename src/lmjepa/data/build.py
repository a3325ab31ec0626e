"""``lmjepa build-data NAME``: build LLM-JEPA-format files from raw datasets.

    lmjepa build-data gsm8k [--data-dir DIR] [--out FILE]
    lmjepa build-data nlrx-splits [--seed S] [--min-test N] [--combo '~>&'] [--out DIR]   # nlrx_splits.py
    lmjepa build-data parallel --src src.txt --targ targ.txt --system "..." --out FILE.jsonl
    lmjepa build-data paraphrase-nlrx [--with-regex] [--out FILE]   # {"views": [SYNTH, TURK(, regex)]} rows
    lmjepa build-data paraphrase-mrpc [--out FILE]                  # MRPC's positive pairs as views

``gsm8k`` reads ``<data_dir>/gsm8k/train.jsonl`` (fields ``question``, ``answer``; 7,473 rows)
and writes ``{"messages": [system, user, assistant]}`` rows with system "Answer the math
question, show steps.", user = question, assistant = answer (reasoning, then ``#### N``) — the
format of ``llm-jepa/gsm8k_test.jsonl``. The default output is
``$LMJEPA_CACHE_DIR/data/llm-jepa/gsm8k_train.jsonl`` (``~/.cache/lmjepa/...``), where the
``gsm8k`` task looks for its training file when the data folder has none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_jsonl
from ..paths import cache_dir
from .jsonl import DataError, data_dir, iter_jsonl
from .regex_syntax import RegexSyntaxError, parse_regex

GSM8K_SYSTEM = "Answer the math question, show steps."


def gsm8k_rows(source: Path) -> list[dict]:
    """LLM-JEPA rows from GSM8K's ``train.jsonl``. Raises DataError naming ``file:line`` on a bad row."""
    rows = []
    for where, record in iter_jsonl(source, "GSM8K file"):
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: missing or empty 'question'")
        if not isinstance(answer, str) or "####" not in answer:
            raise DataError(f"{where}: 'answer' must be a string ending in '#### N'")
        rows.append({"messages": [{"role": "system", "content": GSM8K_SYSTEM},
                                  {"role": "user", "content": question},
                                  {"role": "assistant", "content": answer}]})
    return rows


def paraphrase_nlrx_rows(root: Path, with_regex: bool = False) -> list[dict]:
    """``{"views": [SYNTH description, TURK description(, regex)]}`` for every row of the aligned
    ``llm-jepa/{synth,turk}_train.jsonl`` (TURK's description is a human paraphrase of SYNTH's). Raises
    DataError naming file:line where the two files disagree on a row's regex."""
    synth = list(iter_jsonl(root / "llm-jepa" / "synth_train.jsonl", "NL-RX file"))
    turk = list(iter_jsonl(root / "llm-jepa" / "turk_train.jsonl", "NL-RX file"))
    if len(synth) != len(turk):
        raise DataError(f"synth_train.jsonl has {len(synth)} rows but turk_train.jsonl {len(turk)}: not aligned")
    rows = []
    for (where, a), (_, b) in zip(synth, turk):
        text_a, regex_a = a["messages"][-2]["content"], a["messages"][-1]["content"]
        text_b, regex_b = b["messages"][-2]["content"], b["messages"][-1]["content"]
        if regex_a != regex_b:
            raise DataError(f"{where}: SYNTH and TURK rows are not aligned ({regex_a!r} vs {regex_b!r})")
        rows.append({"views": [text_a, text_b] + ([regex_a] if with_regex else [])})
    return rows


def paraphrase_mrpc_rows(source: Path) -> list[dict]:
    """``{"views": [sentence 1, sentence 2]}`` for MRPC's positive (Quality 1) pairs of ``msr_paraphrase_train.txt``
    (tab-separated, header line). Raises DataError naming file:line on a malformed line."""
    if not source.is_file():
        raise DataError(f"{source}: MRPC file not found")
    rows = []
    for number, line in enumerate(source.read_text(encoding="utf-8-sig").splitlines()[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 5 or fields[0] not in ("0", "1"):
            raise DataError(f"{source}:{number}: expected Quality, #1 ID, #2 ID, #1 String, #2 String")
        if fields[0] == "1":
            rows.append({"views": [fields[3].strip(), fields[4].strip()]})
    return rows


BUILDERS: dict[str, tuple[str, str, Callable[[Path], list[dict]]]] = {
    # name: (raw file under data_dir, output path relative to the data root, builder)
    "gsm8k": ("gsm8k/train.jsonl", "llm-jepa/gsm8k_train.jsonl", gsm8k_rows),
    "paraphrase-mrpc": ("glue/MRPC/msr_paraphrase_train.txt", "paraphrase/mrpc.jsonl", paraphrase_mrpc_rows),
}


def parallel_rows(src: str | Path, targ: str | Path, system: str | None) -> list[dict]:
    """Messages rows from line-aligned text files (the original NL-RX / KB13 layout: one description per line
    in ``src``, one regex per line in ``targ``). Raises DataError on a line-count mismatch, an empty line or
    a target that does not parse in the dk.brics dialect, naming the file and line; nothing is written."""
    texts, targets = (Path(p).read_text(encoding="utf-8").split("\n") for p in (src, targ))
    for path, lines in ((src, texts), (targ, targets)):
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
        for number, line in enumerate(lines, 1):
            if not line.strip():
                raise DataError(f"{path}:{number}: empty line")
    if len(texts) != len(targets):
        raise DataError(f"{src} has {len(texts)} lines but {targ} has {len(targets)}: they must be line-aligned")
    for number, target in enumerate(targets, 1):  # scored by DFA equivalence: every target must parse
        try:
            parse_regex(target)
        except RegexSyntaxError as err:
            raise DataError(f"{targ}:{number}: not a regex of the dk.brics dialect: {err}") from None
    head = [{"role": "system", "content": system}] if system else []
    return [{"messages": head + [{"role": "user", "content": t.strip()}, {"role": "assistant", "content": r.strip()}]}
            for t, r in zip(texts, targets)]


def build(name: str, folder: str | None = None, out: str | Path | None = None, **options) -> tuple[Path, int]:
    """Build ``name``; return (path written, rows). ``options``: ``src``, ``targ``, ``system`` (``parallel``);
    ``count_tokens``, ``seed``, ``min_test``, ``combo`` (``nlrx-splits``, written to a folder). Raises
    ConfigError for an unknown name or a missing option, DataError for bad data (nothing written then)."""
    if name == "parallel":
        if not options.get("src") or not options.get("targ") or not out:
            raise ConfigError("build-data parallel needs --src, --targ and --out")
        rows = parallel_rows(options["src"], options["targ"], options.get("system"))
        atomic_write_jsonl(Path(out), rows)
        return Path(out), len(rows)
    if name == "paraphrase-nlrx":
        rows = paraphrase_nlrx_rows(data_dir(folder), options.get("with_regex", False))
        target = Path(out) if out else cache_dir() / "data" / "paraphrase" / "nlrx.jsonl"
        atomic_write_jsonl(target, rows)
        return target, len(rows)
    if name == "nlrx-splits":
        from .nlrx_splits import build_splits, write_splits

        files, manifest = build_splits(data_dir(folder), options["count_tokens"], options.get("seed", 0),
                                       options.get("min_test", 300), options.get("combo"))
        target = Path(out) if out else cache_dir() / "data" / "nlrx-splits"
        write_splits(target, files, manifest)
        return target, sum(len(rows) for rows in files.values())
    if name not in BUILDERS:
        raise ConfigError(f"unknown build {name!r}; known: "
                          f"{sorted([*BUILDERS, 'nlrx-splits', 'parallel', 'paraphrase-nlrx'])}")
    raw, relative, builder = BUILDERS[name]
    rows = builder(data_dir(folder) / raw)
    target = Path(out) if out else cache_dir() / "data" / relative
    atomic_write_jsonl(target, rows)
    return target, len(rows)
