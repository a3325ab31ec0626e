"""A half-written checkpoint never blocks resume: it is skipped (and set aside), the previous one is used."""

from __future__ import annotations

import json
import logging

import torch
from safetensors.torch import save_file

from lmjepa.training.run_folder import checkpoint_problem, finish, last_checkpoint


def _checkpoint(out, step: int):
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.arange(64, dtype=torch.float32).reshape(8, 8)}, folder / "model.safetensors")
    torch.save({"state": {0: {"exp_avg": torch.ones(8, 8)}}}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def _truncate(path, keep: int = 40):
    path.write_bytes(path.read_bytes()[:keep])


def test_an_interrupted_save_is_skipped_and_set_aside(tmp_path, caplog):
    first, second = _checkpoint(tmp_path, 2), _checkpoint(tmp_path, 4)
    assert checkpoint_problem(first) is None and checkpoint_problem(second) is None
    assert last_checkpoint(tmp_path) == str(second)
    _truncate(second / "model.safetensors")
    assert "model.safetensors is unreadable" in checkpoint_problem(second)
    with caplog.at_level(logging.WARNING, logger="lmjepa"):
        assert last_checkpoint(tmp_path) == str(first)
    assert "skipping" in caplog.text and "checkpoint-4" in caplog.text
    assert not second.exists() and (tmp_path / "incomplete-checkpoint-4").is_dir()  # never tried again
    assert last_checkpoint(tmp_path) == str(first)


def test_each_missing_or_torn_part_is_named(tmp_path):
    folder = _checkpoint(tmp_path, 6)
    _truncate(folder / "optimizer.pt", 100)
    assert "optimizer.pt is unreadable" in checkpoint_problem(folder)
    folder = _checkpoint(tmp_path, 8)
    (folder / "trainer_state.json").unlink()  # killed before the Trainer's last write
    assert "trainer_state.json" in checkpoint_problem(folder)
    folder = _checkpoint(tmp_path, 10)
    (folder / "model.safetensors").unlink()
    assert checkpoint_problem(folder) == "no weight file"


def test_no_usable_checkpoint_starts_afresh_and_finish_clears_everything(tmp_path, caplog):
    only = _checkpoint(tmp_path, 3)
    (only / "trainer_state.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="lmjepa"):
        assert last_checkpoint(tmp_path) is None
    assert "starts afresh" in caplog.text
    _checkpoint(tmp_path, 5)
    finish(tmp_path, {"done": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_second_writer_is_refused_and_a_dead_holder_never_blocks(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import pytest

    from lmjepa.errors import RunFolderError
    from lmjepa.training.run_folder import exclusive

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lmjepa.training.run_folder import exclusive\n"
                               f"with exclusive({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=rf"being written by another process \(pid {holder.pid}\)"):
            with exclusive(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: no cleanup runs, the OS drops the lock
        holder.wait()
    start = time.perf_counter()
    with exclusive(tmp_path):
        assert (tmp_path / ".lock.owner").read_text() == str(__import__("os").getpid())
    assert time.perf_counter() - start < 5 and not (tmp_path / ".lock.owner").exists()
