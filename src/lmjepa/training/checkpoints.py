"""Crash-safe checkpoints for every trainer of lmjepa (``JEPATrainer``, ``PretrainTrainer``): each checkpoint is
written whole under ``<run>/.staging/`` and renamed into place, and carries the loss ledger that lets a resumed
run record its ``train_loss`` over all its steps (issue 34)."""

from __future__ import annotations

import json
import os
import shutil

from transformers.trainer import TRAINER_STATE_NAME

STAGING = ".staging"  # checkpoints are written under <run>/.staging/ and renamed into place when complete


class AtomicCheckpoints:
    """Trainer mixin: each checkpoint is written whole into ``<run>/.staging/checkpoint-N`` (weights, optimizer,
    scheduler, RNG states, ``trainer_state.json`` and ``extra_checkpoint_files``), fsynced, then renamed to
    ``<run>/checkpoint-N`` in one ``os.rename``. A process killed while saving leaves only the staging folder,
    which the next save or ``prepare`` discards, so ``checkpoint-N`` is always complete (``last_checkpoint``
    still checks, for folders written before this existed). Rotation (``save_total_limit``) runs after the rename.
    A trainer's EMA target (``self.ema``, ``monitoring.EMATarget``) is saved with its checkpoint and read back on
    resume. Subclasses write extra files by overriding ``extra_checkpoint_files(folder)``.
    """

    _staging: str | None = None
    ema = None  # the trainer's EMA target, if it has one
    resumed_loss_total: float = 0.0  # the step losses summed over the pieces before a resume (the ledger)
    LOSS_LEDGER = "lmjepa_loss.json"

    def _get_output_dir(self, trial):
        return self._staging or super()._get_output_dir(trial)

    def extra_checkpoint_files(self, folder: str) -> None:
        """Write the loss ledger ``lmjepa_loss.json``, the EMA target (``EMATarget.save``) and, in a subclass, its own
        files into the staged checkpoint ``folder`` (main process; before the rename)."""
        with open(os.path.join(folder, self.LOSS_LEDGER), "w") as f:
            json.dump({"global_step": self.state.global_step, "loss_total": self._loss_total}, f)
        if self.ema is not None:
            self.ema.save(folder)

    def training_loss(self) -> float:
        """The mean step loss over *all* optimizer steps of the run, a resumed run's earlier pieces included (the
        Trainer's own ``training_loss`` averages this piece only). Call after ``train()``."""
        return (self.resumed_loss_total + self._total_loss_scalar) / max(self.state.global_step, 0.001)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.resumed_loss_total = resumed_loss_total(resume_from_checkpoint)
        if self.ema is not None:
            self.ema.load(resume_from_checkpoint, self.args.device)

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import rotate_checkpoints

        # the step losses of every step so far, unlogged ones included (a collective: on every process)
        unlogged = self.accelerator.gather(self._tr_loss.detach().reshape(1)).mean().item()
        self._loss_total = self.resumed_loss_total + self._total_loss_scalar + unlogged
        run_dir = super()._get_output_dir(trial)
        name = f"checkpoint-{self.state.global_step}"
        staging = os.path.join(run_dir, STAGING)
        if self.args.should_save:
            shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
            os.makedirs(staging, exist_ok=True)
        self.accelerator.wait_for_everyone()
        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotation after the rename, below
        self._staging = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging, self.args.save_total_limit = None, limit
        if self.args.should_save:
            self.extra_checkpoint_files(os.path.join(staging, name))
        self.accelerator.wait_for_everyone()  # every process's RNG state is in the staged folder
        if self.args.should_save:
            staged, final = os.path.join(staging, name), os.path.join(run_dir, name)
            _fsync_tree(staged)
            if os.path.isdir(final):  # the same step saved again (a resumed run): replace it
                shutil.rmtree(final)
            os.rename(staged, final)
            _fsync_dir(run_dir)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False)
        self.accelerator.wait_for_everyone()


def resumed_loss_total(checkpoint: str) -> float:
    """The sum of the step losses of steps 1..N recorded in ``checkpoint`` (``checkpoint-N``): its
    ``lmjepa_loss.json``, or for a checkpoint written before it existed, Σ loss × steps over the logged windows of
    its ``trainer_state.json`` (exact when every save fell on a logging step, as lmjepa's configs make it)."""
    ledger = os.path.join(checkpoint, AtomicCheckpoints.LOSS_LEDGER)
    if os.path.isfile(ledger):
        with open(ledger) as f:
            return float(json.load(f)["loss_total"])
    with open(os.path.join(checkpoint, TRAINER_STATE_NAME)) as f:
        history = json.load(f)["log_history"]
    total, last = 0.0, 0
    for row in history:
        if "loss" in row and "step" in row:
            total += row["loss"] * (row["step"] - last)
            last = row["step"]
    return total


def _fsync_tree(folder: str) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(root)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    finally:
        os.close(fd)
