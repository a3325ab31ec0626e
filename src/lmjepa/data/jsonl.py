"""Reading two-view examples from JSONL, with errors that name the file and the line.

Two formats are accepted, one JSON object per line (blank lines are skipped):

* LLM-JEPA ``messages`` form: ``{"messages": [{"role": "system", ...}, {"role": "user", ...},
  {"role": "assistant", ...}]}`` — the system turn is optional; exactly one user and one
  assistant turn are required.
* Explicit two-view form: ``{"text": ..., "code": ..., "system": ...}`` (``system`` optional).

The user turn / ``text`` is the Text view, the assistant turn / ``code`` is the Code view
(LLM-JEPA §2). When a line has both forms, ``messages`` wins.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

__all__ = ["DataError", "Example", "data_dir", "iter_jsonl", "parse_record", "read_examples", "take", "SUBSETS"]


@dataclass(frozen=True)
class Example:
    """One example with its two views.

    Attributes:
        text: the Text view (the user turn: NL description, question, …).
        code: the Code view (the assistant turn: regex, SQL, answer, …); also the NTP target.
        system: optional system prompt, used in the chat-templated full sequence only.
        source: ``"path:line"`` where the example was read, for error messages.
    """

    text: str
    code: str
    system: str | None = None
    source: str = ""

    def messages(self, with_answer: bool = True) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}] if self.system is not None else []
        turns.append({"role": "user", "content": self.text})
        if with_answer:
            turns.append({"role": "assistant", "content": self.code})
        return turns


def parse_record(record: object, where: str) -> Example:
    """Turn one decoded JSON value into an Example. Raises DataError naming ``where``."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list):
            raise DataError(f"{where}: 'messages' must be a list of {{role, content}} objects")
        turns: dict[str, str] = {}
        order = ("system", "user", "assistant")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise DataError(f"{where}: messages[{i}] needs 'role' and 'content'")
            role = message["role"]
            if role not in ("system", "user", "assistant"):
                raise DataError(f"{where}: messages[{i}] has unknown role {role!r}")
            if role in turns:
                raise DataError(f"{where}: more than one {role!r} message (multi-turn is not supported)")
            later = [r for r in turns if order.index(r) > order.index(role)]
            if later:
                raise DataError(f"{where}: messages[{i}] is a {role!r} turn after the {later[0]!r} turn; "
                                "the order must be system (optional), user, assistant")
            if not isinstance(message["content"], str):
                raise DataError(f"{where}: messages[{i}] content must be a string")
            turns[role] = message["content"]
        for role in ("user", "assistant"):
            if role not in turns:
                raise DataError(f"{where}: missing role {role!r} in 'messages'")
        text, code, system = turns["user"], turns["assistant"], turns.get("system")
        names = ("user", "assistant")
    elif "text" in record or "code" in record:
        for key in ("text", "code"):
            if not isinstance(record.get(key), str):
                raise DataError(f"{where}: missing or non-string field {key!r}")
        text, code, system = record["text"], record["code"], record.get("system")
        if system is not None and not isinstance(system, str):
            raise DataError(f"{where}: 'system' must be a string")
        names = ("text", "code")
    else:
        raise DataError(f"{where}: expected 'messages' or 'text'/'code' fields, got {sorted(record)}")
    if not text.strip():
        raise DataError(f"{where}: empty Text view ({names[0]!r} content is empty)")
    if not code.strip():
        raise DataError(f"{where}: empty Code view ({names[1]!r} content is empty)")
    return Example(text=text, code=code, system=system, source=where)


def iter_jsonl(path: str | os.PathLike, what: str = "data file"):
    """Yield ``("path:line", record)`` for each non-blank line of a JSONL file.

    Raises DataError if the file is absent or a line is not valid JSON, naming ``path:line`` (and
    ``:column``, with the line and a caret under the character, for malformed JSON).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    opened = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    with opened as handle:
        for number, line in enumerate(_decoded_lines(handle, path), start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                start = max(0, err.pos - 30)
                excerpt = line.rstrip("\n")[start:err.pos + 30]
                raise DataError(f"{where}:{err.colno}: malformed JSON ({err.msg})\n    {excerpt}\n"
                                f"    {' ' * (err.pos - start)}^") from None
            yield where, record


def _decoded_lines(handle, path: Path):
    """The lines of a binary ``handle``, decoded as UTF-8 (a byte-order mark is not part of line 1). Raises
    DataError naming ``path:line`` for a line that is not UTF-8, and for a truncated or corrupt ``.gz``."""
    number = 0
    try:
        for raw in handle:
            number += 1
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{number}: not UTF-8 (byte {err.start + 1} of the line: {err.reason}); "
                                "save the file as UTF-8") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: unreadable after line {number} ({err})") from None


def read_rows(path: str | os.PathLike, required: tuple[str, ...], what: str = "results file") -> list[dict]:
    """The JSON objects of a JSONL file (e.g. a sweep's results store) in file order, each holding every
    key of ``required``. Raises DataError naming ``path:line`` as ``iter_jsonl`` does, and for a line that
    is not an object or lacks one of ``required`` (the first missing key is named)."""
    rows = []
    for where, row in iter_jsonl(path, what):
        for key in required:
            if not isinstance(row, dict) or key not in row:
                raise DataError(f"{where}: missing {key!r}")
        rows.append(row)
    return rows


def read_examples(path: str | os.PathLike, limit: int | None = None, columns: dict | None = None,
                  split: str | None = None) -> list[Example]:
    """Read up to ``limit`` examples (in file order) from a JSONL file — or from a Hugging Face dataset
    (a ``save_to_disk`` folder, parquet / arrow file or cached dataset id, ``hf_datasets.py``), whose
    ``columns`` map lmjepa's fields to the dataset's and whose ``split`` picks a split.

    Raises DataError if the source is absent, a line is not valid JSON, a role is missing,
    or a view is empty — always naming ``path:line`` (or ``source:row N``).
    """
    from .hf_datasets import is_jsonl, iter_dataset, renamed

    if not is_jsonl(path):
        rows = iter_dataset(path, columns, split)
    elif columns:
        rows = renamed(iter_jsonl(path), columns)
    else:
        rows = iter_jsonl(path)
    examples: list[Example] = []
    for where, record in rows:
        if limit is not None and len(examples) >= limit:
            break
        examples.append(parse_record(record, where))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


SUBSETS = ("first", "spread")


def take(items: list, limit: int | None, how: str = "first") -> list:
    """Up to ``limit`` items: the ``first`` ones, or ``spread`` = evenly spaced over the list
    (deterministic; keeps the label mix of files sorted by label, such as rotten_tomatoes).
    Raises ValueError for another ``how``."""
    if how not in SUBSETS:
        raise ValueError(f"subset must be 'first' or 'spread', got {how!r}")
    if limit is None or limit >= len(items):
        return list(items)
    if how == "first":
        return list(items[:limit])
    return [items[(i * len(items)) // limit] for i in range(limit)]


CHECKOUT_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
"""``shared/data`` beside a source checkout of lmjepa (the development layout): the last fallback."""


def data_dir(setting: str | os.PathLike | None = None) -> Path:
    """The data folder: ``setting`` if given (a config resolves a relative ``data.data_dir`` against
    the config file's folder), else ``$LMJEPA_DATA_DIR``, else ``shared/data`` beside a source checkout.

    Raises DataError if none is set or the folder does not exist.
    """
    value = setting or os.environ.get("LMJEPA_DATA_DIR") or (CHECKOUT_DATA if CHECKOUT_DATA.is_dir() else None)
    if not value:
        raise DataError("no data folder: set data.data_dir in the config or the LMJEPA_DATA_DIR variable")
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found (data.data_dir / LMJEPA_DATA_DIR)")
    return folder
