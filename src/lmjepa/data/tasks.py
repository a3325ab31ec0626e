"""The task registry: each task names its data files, its prompt, its generation budget and the name
of its metric, and a config selects it by name (``task: gsm8k``) — never by a file-name prefix.

Views are the same for every task: Text = the user turn, Code = the assistant turn (which is also
the NTP target), as in the LLM-JEPA JSONL files. Tasks are data: training reads their files and
prompts here; the metric *names* are resolved and checked by ``lmjepa.evaluation.tasks``, which is
where tasks are registered from user code (``register_task`` checks the metric).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import cache_dir
from .jsonl import DataError, data_dir


@dataclass(frozen=True)
class Task:
    """One evaluation (and optionally training) task.

    Attributes:
        name: registry key, e.g. ``nlrx-turk``.
        test_file / train_file: paths relative to the data folder (or absolute). A relative path
            missing there is also looked up under ``$LMJEPA_CACHE_DIR/data`` (where ``lmjepa
            build-data`` writes). ``train_file`` None: the task is evaluation-only.
        metric: a key of ``METRICS`` (``regex``, ``exact``, ``gsm8k``, ``nq-open``, ``label``,
            ``spider``) or of ``register_metric``.
        system_prompt: the task's instruction; used for rows that carry no system turn, and by
            ``build-data``.
        max_new_tokens: generation budget (``eval.max_new_tokens`` overrides it).
        choices: non-empty for multiple-choice tasks: no generation, the answer is the choice
            whose (single) token has the highest next-token probability after the full prompt.
        build: a ``lmjepa build-data`` recipe that creates ``train_file`` from raw data.
        subset: how ``max_*_examples`` picks rows: ``first`` or ``spread`` (evenly spaced; for
            files sorted by label, whose first rows all share one label).
    """

    name: str
    test_file: str
    metric: str
    train_file: str | None = None
    system_prompt: str | None = None
    max_new_tokens: int = 64
    choices: tuple[str, ...] = ()
    build: str | None = None
    subset: str = "first"
    description: str = ""

    def file(self, split: str, folder: str | os.PathLike | None = None) -> Path:
        """The JSONL path of ``split`` (``train`` / ``test``). Raises DataError if absent."""
        relative = self.train_file if split == "train" else self.test_file
        if relative is None:
            raise DataError(f"task {self.name!r} has no {split} file (it is evaluation-only)")
        if Path(relative).is_absolute():
            candidates = [Path(relative)]
        else:
            try:
                candidates, unset = [data_dir(folder) / relative], False
            except DataError:  # no data folder set: packaged and built files can still be found
                if folder is not None:
                    raise
                candidates, unset = [], True
            shipped = packaged(relative)
            candidates += [cache_dir() / "data" / relative] + ([shipped] if shipped else [])
        for path in candidates:
            if path.is_file() or path.is_dir():  # a JSONL / parquet / arrow file, or a save_to_disk folder
                return path
        if self.build and built(relative):
            hint = f"; create it with `lmjepa build-data {self.build}`"
        else:
            hint = ("; set data.data_dir or LMJEPA_DATA_DIR to a folder holding it (the LLM-JEPA repository's "
                    "datasets/ files go under llm-jepa/; see shared/data/README.md)")
        where = ("no data folder is set; " if unset else "") + "looked for " + ", ".join(map(str, candidates))
        raise DataError(f"task {self.name!r}: {split} file {relative} not found ({where}){hint}")


PACKAGED = Path(__file__).with_name("nlrx")
"""NL-RX-SYNTH and -TURK, shipped inside the package with their licences (``nlrx/README.md``)."""


def packaged(relative: str) -> Path | None:
    """The packaged copy of a task file (``llm-jepa/synth_test.jsonl`` → ``nlrx/synth_test.jsonl.gz``), or None."""
    folder, _, name = relative.partition("/")
    path = PACKAGED / f"{name}.gz"
    return path if folder == "llm-jepa" and name.startswith(("synth_", "turk_")) and path.is_file() else None


def built(relative: str) -> bool:
    """Whether a task file is written by a ``lmjepa build-data`` recipe (not shipped with the data)."""
    return relative.startswith(("nlrx-splits/", "paraphrase/", "llm-jepa/gsm8k_train"))


CLASSIFY = "Determine whether the comment is positive or negative"
NLRX = "Convert natural language to regular expression."
TASKS: dict[str, Task] = {}


def add_task(task: Task, replace: bool = False) -> Task:
    """Add ``task`` to the registry (its metric is not checked here: see ``evaluation.tasks.register_task``).
    Raises ConfigError if the name is taken (unless ``replace``)."""
    if task.name in TASKS and not replace:
        raise ConfigError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def find_task(name: str, extra: dict | None = None) -> Task:
    """The task ``name``: from ``extra`` (a config's ``tasks:`` mapping of field dicts) or the registry.

    Raises ConfigError listing the known tasks, or naming the bad field of a malformed definition.
    """
    if extra and name in extra:
        values = dict(extra[name])
        known = {f.name for f in dataclasses.fields(Task)} - {"name"}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"tasks.{name}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        if "test_file" not in values or "metric" not in values:
            raise ConfigError(f"tasks.{name} needs at least test_file and metric")
        values["choices"] = tuple(values.get("choices") or ())
        return Task(name=name, **values)
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known: {sorted(TASKS)} (or define it under tasks: in the config)")
    return TASKS[name]


for _task in [
    Task("nlrx-synth", "llm-jepa/synth_test.jsonl", "regex", "llm-jepa/synth_train.jsonl",
         "Convert natural language to regular expression.", 48,
         description="NL-RX-SYNTH: exact match and DFA equivalence (dk.brics dialect)"),
    Task("nlrx-turk", "llm-jepa/turk_test.jsonl", "regex", "llm-jepa/turk_train.jsonl",
         "Convert natural language to regular expression.", 48,
         description="NL-RX-TURK (human paraphrases): exact match and DFA equivalence"),
    # Multi-view paraphrase data for LLM-JEPA pretraining (jepa.views: multiview; eval.skip: true)
    Task("paraphrase-nlrx", "llm-jepa/synth_test.jsonl", "regex", "paraphrase/nlrx.jsonl", NLRX, 48,
         build="paraphrase-nlrx", description="views: SYNTH and TURK descriptions of each training row"),
    Task("paraphrase-mrpc", "llm-jepa/synth_test.jsonl", "regex", "paraphrase/mrpc.jsonl", NLRX, 48,
         build="paraphrase-mrpc", description="views: MRPC's positive sentence pairs"),
    Task("nlrx-synth-pretrain", "llm-jepa/synth_test.jsonl", "prefix", "llm-jepa/synth_train.jsonl", NLRX, 48,
         description="NL-RX-SYNTH for models pretrained from scratch: the generation begins with the target"),
    Task("gsm8k", "llm-jepa/gsm8k_test.jsonl", "gsm8k", "llm-jepa/gsm8k_train.jsonl",
         "Answer the math question, show steps.", 256, build="gsm8k",
         description="GSM8K: numeric final answer after ####"),
    Task("spider", "llm-jepa/spider_test.jsonl", "spider", "llm-jepa/spider_train.jsonl",
         "Convert natural language to SQL.", 128,
         description="Spider: execution match where the database exists, else normalised exact SQL"),
    Task("nq-open", "llm-jepa/nq_open_test.jsonl", "nq-open", "llm-jepa/nq_open_train.jsonl",
         "Answer the question below.", 32, description="NQ-Open: a gold answer occurs in the generation"),
    Task("hellaswag", "llm-jepa/hellaswag_test.jsonl", "exact", None,
         "Which one of A), B), C), or D) is the best ending for the context? Answer A, B, C, or D.", 1,
         choices=("A", "B", "C", "D"), description="HellaSwag: highest next-token probability among A-D"),
    Task("rotten-tomatoes", "llm-jepa/rotten_tomatoes_test.jsonl", "label", "llm-jepa/rotten_tomatoes_train.jsonl",
         CLASSIFY, 8, subset="spread",  # both files list every Good row before every Bad row
         description="rotten_tomatoes: label match (Good / Bad)"),
    Task("yelp", "llm-jepa/yelp_test.jsonl", "label", None, CLASSIFY, 8,
         description="Yelp: label match over five labels (Very Bad … Very Good)"),
]:
    add_task(_task)

# Out-of-distribution splits (issue 15): `lmjepa build-data nlrx-splits` writes them (data/nlrx_splits.py)
for _name, _test, _train, _tokens, _about in [
    ("dedup", "dedup_synth_test", "llm-jepa/synth_train.jsonl", 48,
     "NL-RX-SYNTH test without rows whose regex or description is in training"),
    ("dedup-turk", "dedup_turk_test", "llm-jepa/turk_train.jsonl", 48,
     "NL-RX-TURK test without rows whose regex or description is in training"),
    ("paraphrase", "paraphrase_test", "llm-jepa/synth_train.jsonl", 48,
     "TURK wording of the nlrx-dedup rows: the shift in language alone"),
    ("depth", "depth_test", "nlrx-splits/depth_train.jsonl", 48, "train on parse-tree depth <= d, test on deeper"),
    ("length", "length_test", "nlrx-splits/length_train.jsonl", 64, "train on targets of <= n tokens, test on longer"),
    ("combo", "combo_test", "nlrx-splits/combo_train.jsonl", 48,
     "held-out operator compositions: in every test target, in no training one"),
]:
    add_task(Task(f"nlrx-{_name}", f"nlrx-splits/{_test}.jsonl", "regex", _train, NLRX, _tokens, build="nlrx-splits",
                  description=_about))
    if _train.startswith("nlrx-splits/"):  # the pooled splits' held-out rows from the training side
        add_task(Task(f"nlrx-{_name}-id", f"nlrx-splits/{_name}_id_test.jsonl", "regex", _train, NLRX, _tokens,
                      build="nlrx-splits", description=f"in-distribution test of nlrx-{_name}: training-side rows "
                                                       "held out of every training prefix"))
