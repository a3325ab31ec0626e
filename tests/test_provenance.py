"""Were the predictions committed before the results? (``pipeline/provenance.py``), on a git repository built
in a temporary folder, with commit times set by hand."""

from __future__ import annotations

import os
import subprocess

import pytest

from lmjepa.pipeline.provenance import changed_since_first_commit, first_commit, provenance


def _git(folder, *args, when="2026-01-01T00:00:00+00:00"):
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(folder), *args], env=env, check=True, capture_output=True, text=True)


@pytest.fixture()
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "predictions.yaml").write_text("predictions: []\n")
    _git(tmp_path, "add", "predictions.yaml")
    _git(tmp_path, "commit", "-qm", "predictions", when="2026-03-01T12:00:00+00:00")
    return tmp_path


def test_before_after_and_unknown(repo):
    claims, store = repo / "predictions.yaml", repo / "results.jsonl"
    short = _git(repo, "log", "--format=%h").stdout.strip()
    assert first_commit(claims)[0] == short and first_commit(claims)[1].isoformat() == "2026-03-01T12:00:00+00:00"
    later, earlier = [{"finished_at": "2026-03-02T08:00:00+00:00"}], [{"finished_at": "2026-02-27T08:00:00"}]
    assert provenance(claims, later, store) == (f"`predictions.yaml` was first committed on 2026-03-01T12:00:00+00:00 "
                                                f"({short}), before the first result (2026-03-02T08:00:00+00:00, the "
                                                "earliest `finished_at` of the rows).")
    assert "**after** the first result (2026-02-27T08:00:00+00:00" in provenance(claims, earlier + later, store)
    assert "when the results were made is not recorded" in provenance(claims, [{}], store)
    store.write_text("{}\n")  # rows without times: the store's first commit is the first result
    _git(repo, "add", "results.jsonl")
    _git(repo, "commit", "-qm", "results", when="2026-03-05T00:00:00+00:00")
    assert ", before the first result (2026-03-05T00:00:00+00:00, the store's first commit, " in provenance(claims, [{}], store)
    assert not changed_since_first_commit(claims)
    claims.write_text("predictions: [changed]\n")
    assert changed_since_first_commit(claims) and provenance(claims, later, store).endswith("It has changed since that commit.")


def test_rows_without_finished_at_bound_the_first_result_by_the_stores_first_commit(repo):
    """A store begun before rows recorded ``finished_at``: its untimed rows are older than the timed ones."""
    claims, store = repo / "predictions.yaml", repo / "results.jsonl"
    mixed = [{}, {"finished_at": "2026-03-09T00:00:00+00:00"}]
    assert provenance(claims, mixed, store).endswith(
        "; when 1 of the 2 results were made is not recorded (no `finished_at` in the rows, store not committed).")
    store.write_text("{}\n")
    _git(repo, "add", "results.jsonl")
    _git(repo, "commit", "-qm", "results", when="2026-02-20T00:00:00+00:00")  # before the predictions' commit
    stored = _git(repo, "log", "-1", "--format=%h").stdout.strip()
    said = provenance(claims, mixed, store)  # the timed row alone would say "before"
    assert (f"**after** the first result (2026-02-20T00:00:00+00:00, the store's first commit, {stored}; 1 of 2 rows "
            "record no `finished_at`)") in said
    assert "before the first result (2026-03-09T00:00:00+00:00, the earliest `finished_at`" in provenance(
        claims, mixed[1:], store)  # every row timed: the store's commit is not consulted


def test_a_file_outside_git_says_so(tmp_path):
    (tmp_path / "p.yaml").write_text("x")
    assert first_commit(tmp_path / "p.yaml") is None
    assert provenance(tmp_path / "p.yaml", [], tmp_path / "r.jsonl") == (
        "`p.yaml` is not committed to git, so nothing shows that it was written before the results.")
