"""Spider scoring: execution match in SQLite where the database exists, else normalised exact SQL.

Execution match (``execution_match``) runs the gold and the predicted query on a read-only
connection to ``<data_dir>/spider/database/<db_id>/<db_id>.sqlite`` with a time limit, and
compares the result rows

* as multisets (``collections.Counter``) — row order is ignored — unless the gold query has an
  ``ORDER BY``, in which case the row lists must be equal in order;
* a prediction that raises (syntax error, unknown column, time limit) is wrong, never "equal to
  an empty result" (the reference compared ``sqlite3`` stdout, where both print nothing).

Only the ``department_store`` database ships offline in ``../shared/data/spider``; every other
example falls back to ``normalized_sql`` equality, and the metrics count how many examples used
each method.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

_DB_ID = re.compile(r"db_id:\s*\[([^\]]+)\]")
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class SQLError(RuntimeError):
    """A query failed (error or time limit)."""


def database_id(question: str) -> str | None:
    """The ``db_id`` of an LLM-JEPA Spider prompt (``For db_id:[X]\\n\\n<question>``), or None."""
    found = _DB_ID.search(question)
    return found.group(1).strip() if found else None


def database_path(spider_dir: str | Path, db_id: str) -> Path:
    return Path(spider_dir) / "database" / db_id / f"{db_id}.sqlite"


def normalized_sql(query: str) -> str:
    """Lower case outside string literals, whitespace collapsed (also around ``,()``), double
    quotes → single, no trailing ``;``. Used only where no database exists."""
    query = query.strip().rstrip(";").strip().replace('"', "'")
    parts = re.split(r"('(?:[^']|'')*')", query)  # keep string literals as they are
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(part)
        else:
            part = re.sub(r"\s*([,()=<>])\s*", r" \1 ", part.lower())
            out.append(" ".join(part.split()))
    return " ".join(" ".join(out).split())


def run_query(database: Path, query: str, timeout_s: float = 10.0) -> list[tuple]:
    """All rows of ``query`` on a read-only connection. Raises SQLError on any error or timeout."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    connection.text_factory = lambda b: b.decode("utf-8", errors="replace")
    try:
        return connection.execute(query).fetchall()
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as err:
        raise SQLError(str(err) or "interrupted (time limit)") from None
    finally:
        connection.close()


def results_equal(gold_rows: list[tuple], predicted_rows: list[tuple], ordered: bool) -> bool:
    """Row lists equal in order when ``ordered``, else equal as multisets."""
    if ordered:
        return gold_rows == predicted_rows
    return Counter(gold_rows) == Counter(predicted_rows)


def execution_match(database: Path, gold: str, prediction: str, timeout_s: float = 10.0) -> bool | None:
    """True/False by executing both queries; None if the *gold* query fails (not scorable).

    Raises nothing: a failing prediction is simply False.
    """
    try:
        gold_rows = run_query(database, gold, timeout_s)
    except SQLError:
        return None
    try:
        predicted_rows = run_query(database, prediction, timeout_s)
    except SQLError:
        return False
    return results_equal(gold_rows, predicted_rows, ordered=bool(_ORDER_BY.search(gold)))


def score_spider(predictions: list[str], golds: list[str], questions: list[str], spider_dir: str | Path | None,
                 timeout_s: float = 10.0) -> tuple[dict, list[dict]]:
    """Execution match where the database exists, normalised exact match elsewhere.

    Returns ``(metrics, rows)``. Metrics (percent of the examples in each group):
    ``spider_match`` over all, ``execution_match`` over ``n_execution`` examples with a database,
    ``exact_sql_match`` over ``n_exact_fallback`` without one, ``gold_errors`` (gold failed: wrong),
    and ``databases_found``, the db_ids that were executed.
    """
    rows, found = [], set()
    counts = Counter()
    for prediction, gold, question in zip(predictions, golds, questions):
        db_id = database_id(question)
        database = database_path(spider_dir, db_id) if spider_dir and db_id else None
        if database is not None and database.is_file():
            verdict = execution_match(database, gold, prediction, timeout_s)
            found.add(db_id)
            counts["n_execution"] += 1
            counts["gold_errors"] += verdict is None
            counts["execution_correct"] += verdict is True
            rows.append({"db_id": db_id, "method": "execution", "correct": verdict is True, "gold_error": verdict is None})
        else:
            verdict = normalized_sql(prediction) == normalized_sql(gold)
            counts["n_exact_fallback"] += 1
            counts["exact_correct"] += verdict
            rows.append({"db_id": db_id, "method": "exact_sql", "correct": verdict})
    percent = lambda a, b: 100.0 * a / b if b else None  # noqa: E731
    n = len(rows)
    metrics = {
        "spider_match": percent(counts["execution_correct"] + counts["exact_correct"], n),
        "execution_match": percent(counts["execution_correct"], counts["n_execution"]),
        "n_execution": counts["n_execution"],
        "exact_sql_match": percent(counts["exact_correct"], counts["n_exact_fallback"]),
        "n_exact_fallback": counts["n_exact_fallback"],
        "gold_errors": counts["gold_errors"],
        "databases_found": sorted(found),
    }
    return metrics, rows
