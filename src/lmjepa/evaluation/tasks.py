"""Tasks as evaluation sees them: the metric registry, and task registration with its metric checked.

The task registry itself (files, prompts, budgets) is ``lmjepa.data.tasks``; this module adds the
metrics. Add a task without editing lmjepa:
* YAML: a ``tasks:`` mapping in the run config, ``{my-task: {test_file: ..., train_file: ...,
  metric: exact, max_new_tokens: 32}}``, then ``task: my-task``;
* Python: ``register_task(Task(...))``, and ``register_metric(name, check)`` for a new
  per-example check ``check(prediction, reference) -> bool``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..data.tasks import CLASSIFY, TASKS, Task, add_task, find_task
from ..errors import ConfigError
from . import metrics as m

__all__ = ["CLASSIFY", "METRICS", "TASKS", "Task", "check_config", "get_task", "register_metric", "register_task"]


def register_task(task: Task, replace: bool = False) -> Task:
    """Add ``task`` to the registry. Raises ConfigError if the name is taken (unless ``replace``)
    or the metric is unknown."""
    _check_metric(task)
    return add_task(task, replace)


def get_task(name: str, extra: dict | None = None) -> Task:
    """The task ``name`` (``extra``: a config's ``tasks:`` mapping), its metric checked.

    Raises ConfigError listing the known tasks or metrics, or naming the bad field.
    """
    return _check_metric(find_task(name, extra))


def check_config(config) -> Task:
    """Check a run config's task and its metric (and every task defined under ``tasks:``) before any
    model or data is touched. Returns the config's task. Raises ConfigError."""
    for name in config.tasks:
        get_task(name, config.tasks)
    return get_task(config.task, config.tasks)


def _check_metric(task: Task) -> Task:
    if task.metric not in METRICS:
        raise ConfigError(f"task {task.name!r}: metric {task.metric!r} is not one of {sorted(METRICS)}")
    return task


# --- metrics: name -> per-example check, and the key its percentage is reported under -------------

METRICS: dict[str, tuple[str, Callable[[str, str], bool] | None]] = {
    "exact": ("exact_match", m.exact_match),
    "prefix": ("prefix_match", m.prefix_match),
    "regex": ("semantic_match", None),  # scored by evaluate.score_regex (DFA equivalence, timeouts)
    "gsm8k": ("gsm8k_match", m.gsm8k_match),
    "nq-open": ("nq_open_match", m.nq_open_match),
    "label": ("label_match", m.label_match),
    "spider": ("spider_match", None),  # scored by sql.score_spider (needs the database folder)
}


def register_metric(name: str, check: Callable[[str, str], bool], key: str | None = None) -> None:
    """Add a per-example metric ``check(prediction, reference) -> bool``, reported in percent under
    ``key`` (default ``<name>_match``). Raises ValueError if ``name`` is taken."""
    if name in METRICS:
        raise ConfigError(f"metric {name!r} is already registered")
    METRICS[name] = (key or f"{name.replace('-', '_')}_match", check)
