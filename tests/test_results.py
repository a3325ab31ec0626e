"""Committed results that state numbers in sentences regenerate from their records: each script's ``--check``
rebuilds its report (tables, sentences) from the committed records and fails if anything differs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize("script", ["dispute-nlrx/report.py", "pretrain-llm-jepa/scratch-s41/table.py"])
def test_committed_reports_are_regenerated_from_their_records(script):
    done = subprocess.run([sys.executable, str(RESULTS / script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
