"""lmjepa outside this repository (issue 32): a wheel installed into an empty folder runs a preset on the
packaged NL-RX with no data folder; ``model.name`` takes a built-in GGUF, a local folder and a cached hub id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMJEPA_DATA_DIR", "PYTHONPATH"))}
    return {**env, **extra}


@pytest.mark.slow
def test_wheel_installed_elsewhere_runs_a_preset_without_a_data_folder(tmp_path):
    wheels, target, cwd = tmp_path / "wheels", tmp_path / "site", tmp_path / "empty"
    cwd.mkdir()
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheels)], check=True,
                   capture_output=True)
    wheel = next(wheels.glob("lmjepa-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    command = [sys.executable, "-m", "lmjepa.cli.main", "inspect", "nlrx-synth-smollm2", "--rows", "2", "--json"]
    out = subprocess.run(command, cwd=cwd, env=_clean_env(PYTHONPATH=str(target)), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))["rows"]
    assert len(rows) == 2
    assert "lines with words with a vowel and a lower-case letter" in rows[0]["full"]  # synth_train row 1
    where = subprocess.run([sys.executable, "-c", "import lmjepa, lmjepa.data.tasks as t; "
                            "print(lmjepa.__file__); print(t.find_task('nlrx-synth').file('train'))"],
                           cwd=cwd, env=_clean_env(PYTHONPATH=str(target)), capture_output=True, text=True, check=True)
    module, train = where.stdout.split()
    assert module.startswith(str(target)) and train.startswith(str(target)) and train.endswith("synth_train.jsonl.gz")


def test_model_name_takes_a_local_folder_and_a_cached_hub_id_offline(tmp_path, tiny_model_dir):
    """The hub id resolves through a Hugging Face cache laid out by hand (refs/main -> snapshot), offline."""
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--someone--tiny-llama"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in tiny_model_dir.iterdir():
        (snapshot / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = (
        "import sys, torch; from lmjepa.models.loading import resolve_model_path; "
        "from transformers import AutoModelForCausalLM; "
        "paths = [resolve_model_path(n) for n in sys.argv[1:]]; print('\\n'.join(paths)); "
        "models = [AutoModelForCausalLM.from_pretrained(p) for p in paths]; "
        "print(all(torch.equal(a, b) for a, b in zip(*(m.state_dict().values() for m in models))))")
    env = _clean_env(HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", script, str(tiny_model_dir), "someone/tiny-llama"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    local, hub, same = out.stdout.split()
    assert local == str(tiny_model_dir) and hub == str(snapshot) and same == "True"
    missing = subprocess.run([sys.executable, "-c", script, "someone/not-cached"], env=env, capture_output=True,
                             text=True)
    assert missing.returncode != 0 and "not available offline" in missing.stderr
