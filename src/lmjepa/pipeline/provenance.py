"""Were the predictions written before the results? Read from git and the results' own times.

A pre-registration is only as good as the evidence that it came first. ``provenance`` compares the first
commit that added a predictions file with the first result: the earliest ``finished_at`` of the store's rows
(``lmjepa sweep`` records it) or, where rows lack it, the first commit that added the store if that is
earlier. It says which came first, or that nothing shows it (the file is not committed, the results' time
is not recorded), and whether the file changed after its first commit.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(path.parent), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def first_commit(path: str | Path) -> tuple[str, datetime] | None:
    """(short hash, committer time) of the earliest commit that added ``path``; None if git is absent, the
    file is not in a repository or was never committed."""
    path = Path(path).resolve()
    lines = (_git(path, "log", "--diff-filter=A", "--format=%h %cI", "--", path.name) or "").splitlines()
    if not lines:
        return None
    short, when = lines[-1].split(" ", 1)
    return short, datetime.fromisoformat(when)


def changed_since_first_commit(path: str | Path) -> bool:
    """Whether ``path`` differs from the commit that added it (later commits or uncommitted edits)."""
    path = Path(path).resolve()
    first = first_commit(path)
    return first is not None and _git(path, "diff", "--quiet", first[0], "--", path.name) is None


def _aware(when: datetime) -> datetime:
    """A time without a zone is read as UTC (so that it compares with git's)."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def provenance(predictions: str | Path, rows: list[dict], store: str | Path) -> str:
    """One sentence: whether ``predictions`` was committed before the first result of ``rows``.

    The first result is the earliest ``finished_at`` (ISO 8601; no zone reads as UTC) when every row records
    it. Rows that do not (a store begun before ``finished_at`` existed) are known only to precede ``store``'s
    first commit, so then the first result is the earlier of that commit and the earliest ``finished_at``; if
    the store is not committed either, the sentence says that the time is not recorded."""
    name = f"`{Path(predictions).name}`"
    written = first_commit(predictions)
    if written is None:
        return f"{name} is not committed to git, so nothing shows that it was written before the results."
    said = f"{name} was first committed on {written[1].isoformat()} ({written[0]})"
    changed = " It has changed since that commit." if changed_since_first_commit(predictions) else ""
    times = [_aware(datetime.fromisoformat(r["finished_at"])) for r in rows if r.get("finished_at")]
    untimed = len(rows) - len(times)
    stored = first_commit(store) if untimed or not times else None
    if stored is None and (untimed or not times):
        which = f"{untimed} of the {len(rows)} results were" if times else "the results were"
        return f"{said}; when {which} made is not recorded (no `finished_at` in the rows, store not committed).{changed}"
    bounds = [(min(times), "the earliest `finished_at` of the rows")] if times else []
    if stored is not None:
        note = f"; {untimed} of {len(rows)} rows record no `finished_at`" if times else ""
        bounds.append((stored[1], f"the store's first commit, {stored[0]}{note}"))
    first, source = min(bounds)
    if written[1] < first:
        return f"{said}, before the first result ({first.isoformat()}, {source}).{changed}"
    return (f"{said}, **after** the first result ({first.isoformat()}, {source}): these predictions were not "
            f"written before the results.{changed}")
