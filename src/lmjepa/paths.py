"""Where lmjepa keeps what it makes outside a run folder (every layer may use this)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Folder for converted models and built data: ``$LMJEPA_CACHE_DIR`` or ``~/.cache/lmjepa``."""
    return Path(os.environ.get("LMJEPA_CACHE_DIR", Path.home() / ".cache" / "lmjepa"))
