"""Hugging Face ``datasets`` as input: a ``save_to_disk`` folder, a parquet or arrow file, or a dataset id.

Rows become the same records as a JSONL line (``messages`` or ``text``/``code``/``system``), so
``jsonl.parse_record`` checks them with the same messages. ``columns`` maps lmjepa's field names to the
user's column names (``{text: question, code: query}`` or ``{messages: conversation}``); without it the
columns must already carry lmjepa's names. A dataset id is read with ``datasets.load_dataset`` offline
(from the local cache); nothing is downloaded. Rows are named ``source[split]:row N`` in errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError

FIELDS = ("messages", "text", "code", "system")
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")


def is_jsonl(source: str | os.PathLike) -> bool:
    """Whether ``source`` is read as JSONL (by its suffix); everything else goes through ``datasets``."""
    return str(source).endswith(JSONL_SUFFIXES)


def _load(source: str, split: str | None):
    try:
        import datasets
    except ImportError:
        raise DataError(f"{source}: reading Hugging Face datasets needs the datasets package") from None
    path = Path(source).expanduser()
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
    elif path.suffix == ".parquet":
        loaded = datasets.Dataset.from_parquet(str(path))
    elif path.suffix == ".arrow":
        loaded = datasets.Dataset.from_file(str(path))
    elif path.exists() or source.startswith((".", "/", "~")):
        raise DataError(f"{source}: not a JSONL, parquet or arrow file, nor a save_to_disk folder")
    else:
        # Offline for this call only. `datasets` reads HF_HUB_OFFLINE / HF_DATASETS_OFFLINE when it is first
        # imported (transformers' Trainer imports it before any data is read), so setting the environment
        # variable here would not stop it asking the hub (≈ 20 s of connection retries without network).
        online, datasets.config.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE, True
        try:
            loaded = datasets.load_dataset(source, split=split)
        except Exception as err:
            raise DataError(f"dataset {source!r} is not available offline ({type(err).__name__}): lmjepa never "
                            "downloads at run time; save it with datasets' save_to_disk where there is network "
                            "and point data.train_file / data.eval_file at that folder") from None
        finally:
            datasets.config.HF_HUB_OFFLINE = online
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{source}: no split {split!r}; it has {sorted(loaded)}")
        loaded = loaded[split]
    return loaded


def iter_dataset(source: str | os.PathLike, columns: dict | None = None, split: str | None = None
                 ) -> Iterator[tuple[str, dict]]:
    """Yield ``(where, record)`` for each row of a Hugging Face dataset (module docstring).

    Raises DataError naming the source for an unreadable source, a missing split, or a column of
    ``columns`` (or an unknown field it maps) that the dataset does not have.
    """
    source = str(source)
    dataset = _load(source, split)
    for field, column in (columns or {}).items():
        if column not in dataset.column_names:
            raise DataError(f"{source}: column {column!r} (data.columns.{field}) not found; columns: "
                            f"{dataset.column_names}")
    name = f"{source}[{split}]" if split else source
    rows = ((f"{name}:row {number}", dict(row)) for number, row in enumerate(dataset, start=1))
    yield from renamed(rows, columns) if columns else rows


def renamed(rows: Iterator[tuple[str, dict]], columns: dict) -> Iterator[tuple[str, dict]]:
    """``rows`` with the user's column names mapped onto lmjepa's fields (``data.columns``), for JSONL and
    datasets alike. Raises DataError for a field that is not lmjepa's or a column a row lacks."""
    for field in columns:
        if field not in FIELDS:
            raise DataError(f"data.columns: {field!r} is not one of {list(FIELDS)}")
    for where, record in rows:
        missing = [c for c in columns.values() if not isinstance(record, dict) or c not in record]
        if missing:
            raise DataError(f"{where}: column {missing[0]!r} (data.columns) not found")
        yield where, {field: record[column] for field, column in columns.items()}
