"""``lmjepa build-data``: build a dataset into the data folder (``data.build``); the NL-RX splits count
tokens with the named model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from ..data.build import build
from ..data.nlrx_splits import manifest_summary, parse_combo
from ..models.loading import load_tokenizer, resolve_model_path


def build_data(name: str, data_dir: str | None, out: str | None, tokenizer: str | None = None,
               combo: str | None = None, **options) -> tuple[Path, int, str | None]:
    """Build dataset ``name`` (``data.build.build``; ``options`` are its keyword options). ``nlrx-splits`` also
    takes ``tokenizer`` (the model whose tokens the length split counts) and ``combo``. Returns ``(path, rows
    written, the splits' manifest summary or None)``. Raises ConfigError / DataError on bad input."""
    if name == "nlrx-splits":
        counter = load_tokenizer(resolve_model_path(tokenizer))
        options["count_tokens"] = lambda text: len(counter(text, add_special_tokens=False)["input_ids"])
        options["combo"] = parse_combo(combo) if combo else None
    path, rows = build(name, data_dir, out, **options)
    summary = manifest_summary(json.loads((path / "manifest.json").read_text())) if name == "nlrx-splits" else None
    return path, rows, summary
