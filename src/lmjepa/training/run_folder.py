"""One run folder helper for every stage (``lmjepa train``, ``lmjepa pretrain``, and any later one).

A run folder holds::

    config.yaml     the resolved configuration (any ConfigBase schema)
    run.log         data counts, the training log (one line per logging step), timings, errors
    checkpoint-N/   Trainer checkpoints while training: a killed run resumes from the last
    model/          the final model
    generations.partial.jsonl   the batches an unfinished evaluation has generated (removed once
                    predictions.jsonl is written): a killed evaluation resumes at its batch
    metrics.json    written atomically, last: its presence means the run is complete

Rules: a folder holding another config is refused (``RunFolderError``) unless ``force``; ``force``
removes the stale results — ``metrics.json``, ``predictions.jsonl``, the partial generations, ``model/``,
every checkpoint —
so a forced run never resumes a checkpoint of another config; a finished run is returned as is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer import TRAINER_STATE_NAME

from ..config import ConfigBase, load_config, save_config
from ..errors import ConfigError, RunFolderError
from ..io import atomic_write_json
from .checkpoints import STAGING

log = logging.getLogger("lmjepa")
training_log = logging.getLogger("lmjepa.training_log")  # run.log only: the console has the Trainer's own lines
training_log.propagate = False
training_log.setLevel(logging.INFO)
PARTIAL_GENERATIONS = "generations.partial.jsonl"  # evaluation.generate.GenerationLog's file in a run folder
STALE = ("metrics.json", "predictions.jsonl", PARTIAL_GENERATIONS, "model")


def is_main_process() -> bool:
    """True in a single process, and in the process of rank 0 under ``accelerate launch``."""
    return os.environ.get("RANK", "0") == "0"


@contextmanager
def exclusive(folder: str | Path, what: str = "run folder") -> Iterator[None]:
    """Hold an OS-level lock on ``folder`` (``folder/.lock``, ``filelock``) while the block runs, so one process
    writes it at a time; the OS releases the lock when its process dies, so a killed run never blocks the
    next. Other processes of one ``accelerate launch`` (not the main one) share the main one's lock.

    Raises RunFolderError at once, naming the folder and the holder's pid, if another process holds it.
    """
    if not is_main_process():
        yield
        return
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    owner = folder / ".lock.owner"
    lock = FileLock(str(folder / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            pid = owner.read_text().strip()
        except OSError:
            pid = "unknown"
        raise RunFolderError(f"{folder}: this {what} is being written by another process (pid {pid}); wait for it "
                             "to finish or stop it") from None
    try:
        owner.write_text(str(os.getpid()))
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _checkpoint_folders(out: Path) -> list[Path]:
    """Every checkpoint folder of a run: complete, set aside as incomplete, and the staging folder of a save."""
    return [*out.glob("checkpoint-*"), *out.glob("incomplete-checkpoint-*"), *out.glob(STAGING)]


def _nothing_made(out: Path) -> bool:
    """True when a run folder holds no result and no checkpoint (a start that failed before its first save): its
    ``config.yaml`` may be replaced by a corrected config."""
    made = [*STALE, "checkpoint-*", "incomplete-checkpoint-*"]  # a torn first save (.staging) is discarded instead
    return not any(any(out.glob(pattern)) for pattern in made)


def check_writable(folder: str | Path) -> None:
    """Raise RunFolderError naming ``folder`` if it is a file, or if it (or its first existing parent, where it
    would be created) is not a writable folder. Creates nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output_dir {folder}: is a file, not a folder")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"output_dir {folder}: {probe} is not a writable folder")
    try:  # root passes every access check; a read-only or special filesystem still refuses a file
        handle, name = tempfile.mkstemp(prefix=".lmjepa-write-check-", dir=probe)
        os.close(handle)
        os.unlink(name)
    except OSError as err:
        raise RunFolderError(f"output_dir {folder}: {probe} is not a writable folder ({err.strerror})") from None


def prepare(config: ConfigBase, force: bool = False) -> dict | None:
    """Make ``config.output_dir`` ready for ``config``; return the stored metrics of a finished run.

    Returns the metrics dict when the run is complete (and not ``force``), else None after writing
    ``config.yaml`` (main process only). Raises RunFolderError if the folder holds another config
    and ``force`` is not set.
    """
    out = Path(config.output_dir)
    saved = out / "config.yaml"
    if saved.exists() and not force and load_config(saved, cls=type(config)).to_dict() != config.to_dict() \
            and not _nothing_made(out):
        raise RunFolderError(f"{out} holds a run with a different config ({saved}); "
                             "use another output_dir, or --force to start it again")
    if (out / "metrics.json").exists() and not force:
        log.info("%s is complete; not recomputed (use --force)", out)
        return json.loads((out / "metrics.json").read_text())
    if force and is_main_process():  # start again: no stale result, no checkpoint of another config to resume
        for name in STALE:
            target = out / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        for checkpoint in _checkpoint_folders(out):
            shutil.rmtree(checkpoint, ignore_errors=True)
    if is_main_process():  # a save a killed process never completed
        shutil.rmtree(out / STAGING, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        save_config(config, saved)
    return None


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors",
                "adapter_model.bin")


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be resumed from (a process killed while the Trainer saved it), or None if complete:
    its ``trainer_state.json`` parses (the Trainer writes it after the weights and the optimizer), a weight
    file is there and readable (a safetensors header, or a torch zip's central directory), and so are
    ``optimizer.pt`` and ``scheduler.pt`` if present. Reads headers only, not the tensors."""
    import zipfile

    folder = Path(folder)
    try:
        json.loads((folder / TRAINER_STATE_NAME).read_text())["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {TRAINER_STATE_NAME}"
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        return "no weight file"
    for path in weights + [folder / n for n in ("optimizer.pt", "scheduler.pt") if (folder / n).is_file()]:
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), "pt") as handle:
                    handle.keys()
            elif path.suffix in (".pt", ".bin"):
                zipfile.ZipFile(path).close()
            else:
                json.loads(path.read_text())
        except Exception as err:  # a truncated or garbled file, whatever the reader raises
            return f"{path.name} is unreadable ({type(err).__name__})"
    return None


def _checkpoints(out: str | Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``out``, newest (largest N) first; [] if ``out`` is not a folder."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted((p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                  key=lambda p: int(p.name.split("-")[-1]), reverse=True)


def checkpoint_state(out: str | Path) -> dict | None:
    """The parsed ``trainer_state.json`` of the newest ``checkpoint-N`` in ``out`` whose state reads, or None
    (no folder, no checkpoint, none readable). Read-only: unlike ``last_checkpoint`` it neither logs nor renames
    a torn checkpoint, and it does not check the weights (``checkpoint_problem``)."""
    for folder in _checkpoints(out):
        try:
            state = json.loads((folder / TRAINER_STATE_NAME).read_text())
            int(state["global_step"])
            return state
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def last_checkpoint(out: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder to resume from (logged), or None.

    An incomplete or unreadable newer one (``checkpoint_problem``) is skipped with a one-line warning naming
    it, and renamed ``incomplete-checkpoint-N`` by the main process so no later run tries it again; if none is
    usable, the run starts afresh and says so.
    """
    out = Path(out)
    skipped = 0
    for folder in _checkpoints(out):
        problem = checkpoint_problem(folder)
        if problem is None:
            log.info("resuming from %s", folder)
            return str(folder)
        skipped += 1
        log.warning("skipping %s: %s (an interrupted save); trying the previous checkpoint", folder, problem)
        if is_main_process():
            folder.rename(folder.with_name(f"incomplete-{folder.name}"))
    if skipped:
        log.warning("no usable checkpoint in %s: training starts afresh", out)
    return None


def finish(out: str | Path, metrics: dict) -> dict:
    """Remove the checkpoints (the final model supersedes them) and write ``metrics.json`` atomically."""
    for checkpoint in _checkpoint_folders(Path(out)):
        shutil.rmtree(checkpoint, ignore_errors=True)
    atomic_write_json(Path(out) / "metrics.json", metrics)
    return metrics


@contextmanager
def run_log(out: str | Path) -> Iterator[logging.Handler]:
    """Append the ``lmjepa`` logger's records to ``out/run.log`` while the block runs."""
    handler = logging.FileHandler(Path(out) / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.setLevel(logging.INFO)
    for logger in (log, training_log):
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in (log, training_log):
            logger.removeHandler(handler)
        handler.close()


class TrainingClock(TrainerCallback, ExportableState):
    """Training seconds over every process that trained a run, so a resumed run reports its whole cost.

    Two clocks: wall seconds (``time.perf_counter``) and CPU seconds (``time.process_time``: user + system time
    of every thread of the process, which a paused process does not accrue; cores shared with another job can
    still raise it, e.g. through threads that spin while they wait). Each checkpoint's ``trainer_state.json`` records, under ``stateful_callbacks``, both up to
    it (``seconds_before`` / ``cpu_seconds_before`` of the earlier processes plus this one's since
    ``start()``); ``resumed(checkpoint)`` reads them back. Work a killed process did after its last
    checkpoint is not counted: it was redone. Both are in seconds (float); 0.0 for a run that starts afresh.
    """

    def __init__(self, seconds_before: float = 0.0, cpu_seconds_before: float = 0.0):
        self.seconds_before = float(seconds_before)
        self.cpu_seconds_before = float(cpu_seconds_before)
        self.start()

    @classmethod
    def resumed(cls, checkpoint: str | Path | None) -> "TrainingClock":
        """A clock that starts from the seconds ``checkpoint`` recorded (0.0 if None, or if it was written
        before lmjepa recorded them: its earlier seconds are unknown, and logged as such)."""
        if checkpoint is None:
            return cls()
        state = json.loads((Path(checkpoint) / TRAINER_STATE_NAME).read_text())
        seconds, cpu = cls._entry(state), cls._entry(state, "cpu_seconds_before")
        if seconds is None:
            log.warning("%s records no training seconds: train_seconds and train_cpu_seconds count this process "
                        "only", checkpoint)
        elif cpu is None:
            log.warning("%s records no training CPU seconds: train_cpu_seconds counts this process only", checkpoint)
        return cls(seconds or 0.0, cpu or 0.0)

    @classmethod
    def recorded(cls, state: dict | None) -> float:
        """The training (wall) seconds a checkpoint's parsed ``trainer_state.json`` records (0.0 for None or a
        state written before the clock existed)."""
        seconds = cls._entry(state)
        return 0.0 if seconds is None else seconds

    @classmethod
    def _entry(cls, state: dict | None, key: str = "seconds_before") -> float | None:
        """``key`` from this clock's ``stateful_callbacks`` entry of a parsed trainer state, or None."""
        saved = ((state or {}).get("stateful_callbacks") or {}).get(cls.__name__)
        try:
            return float(saved["args"][key])
        except (KeyError, TypeError, ValueError):
            return None

    def start(self) -> None:
        """Start this process's part: call it right before ``Trainer.train``."""
        self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def seconds(self) -> float:
        """Wall seconds trained so far: the earlier processes' and this one's since ``start()``."""
        return self.seconds_before + time.perf_counter() - self.started

    def cpu_seconds(self) -> float:
        """CPU seconds (all threads, user + system) trained so far: the earlier processes' and this one's."""
        return self.cpu_seconds_before + time.process_time() - self.cpu_started

    def state(self) -> dict:
        seconds = {"seconds_before": round(self.seconds(), 3), "cpu_seconds_before": round(self.cpu_seconds(), 3)}
        return {"args": seconds, "attributes": {}}

    def on_train_begin(self, args, state, control, **kwargs):
        # A checkpoint written before the clock existed has no entry, and the Trainer's save expects one.
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())


class LogToRunLog(TrainerCallback):
    """Writes each Trainer log (loss, λ, JEPA terms, learning rate …) as one line of ``run.log``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            values = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
            training_log.info("step %d: %s", state.global_step, values)


def run_variants(config: ConfigBase, runner, names: list[str] | None = None, force: bool = False) -> dict[str, dict]:
    """Run each named variant of ``config`` (all of them by default) into ``output_dir/<variant>``.

    ``runner(config, force) -> metrics`` does one run (``pipeline.run.train_and_evaluate`` for a
    ``RunConfig``, ``training.pretrain.pretrain`` for a ``PretrainConfig``). A config without
    variants is one run into ``output_dir``. Raises ConfigError on an unknown variant name.
    """
    if not config.variants:
        return {config.name: runner(config, force)}
    unknown = [name for name in names or [] if name not in config.variants]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r}; the config has {list(config.variants)}")
    results = {}
    base = config.without_variants()  # a variant's config is validated without its siblings
    for name in names or list(config.variants):
        variant = base.with_overrides({**(config.variants[name] or {}), "name": f"{config.name}/{name}",
                                       "output_dir": str(Path(config.output_dir) / name)})
        results[name] = runner(variant, force)
    return results
