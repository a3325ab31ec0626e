"""Bad input is one line on stderr with rc 2, before any model loads (a first table; issue 34 extends it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

BASE = ROOT / "configs" / "nlrx-synth-smollm2.yaml"
CASES = [
    ("duplicate key", "train", "name: a\nname: b\n", "duplicate key 'name'"),
    ("not a mapping", "train", "- a\n- b\n", "expects a mapping"),
    ("invalid YAML", "train", "name: [a\n", "not valid YAML"),
    ("unknown key", "train", "jepa: {lbdd: 1}\n", "did you mean 'lbd'"),
    ("bad choice", "train", "jepa: {views: sideways}\n", "sideways"),
    ("duplicate cell", "sweep", f"base: {BASE}\noutput_dir: OUT\ncells:\n  a: {{}}\n  a: {{}}\n", "duplicate key 'a'"),
    ("duplicate seed", "sweep", f"base: {BASE}\noutput_dir: OUT\nseeds: [4, 4]\ncells: {{a: {{}}}}\n", "repeats [4]"),
    ("non-integer seed", "sweep", f"base: {BASE}\noutput_dir: OUT\nseeds: ['8']\ncells: {{a: {{}}}}\n", "integers"),
    ("no such preset", "train", None, "no preset has that name; did you mean 'nlrx-synth-smollm2'"),
]


@pytest.mark.parametrize("name, command, text, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_rc_2_and_creates_nothing(tmp_path, name, command, text, expected):
    out = tmp_path / "out"
    if text is None:
        target = "nlrx-synth-smolm2"
    else:
        target = tmp_path / "spec.yaml"
        target.write_text(text.replace("OUT", str(out)))
    result = subprocess.run([sys.executable, "-m", "lmjepa.cli.main", command, str(target)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    lines = [l for l in result.stderr.splitlines() if l.startswith("lmjepa")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-1500:]
    assert not out.exists() and not (tmp_path / "runs").exists()
