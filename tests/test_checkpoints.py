"""Checkpoints of a SQLite journal: in their own thread, never inside a commit, and a long
WAL caught up with the writers' turn held (the lock file's when shared, else the writer's)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import pytest
from helpers import eventually, impression, in_database_file, integrity_ok

from mockserver import CoreRequest, Endpoint, SqliteJournal
from mockserver.journal import checkpoints


def _fill(journal: SqliteJournal, count: int) -> None:
    endpoint = Endpoint(journal)
    for i in range(count):
        body = json.dumps(impression(f"v{i}")).encode()
        request = CoreRequest(
            "POST", "/v1/events", body, headers=[("content-type", "application/json")]
        )
        assert endpoint.handle(request).status == 204


def _catching_up(
    path: Path, monkeypatch: pytest.MonkeyPatch, *, shared: bool = False
) -> SqliteJournal:
    """A journal at `path` (its schema already in the database file) whose checkpoint
    thread catches up at every round: every WAL is long."""
    monkeypatch.setattr(checkpoints, "CATCH_UP_PAGES", 1)
    SqliteJournal(path).close()
    return SqliteJournal(path, shared=shared)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "of-its-own"])
def test_a_journal_checkpoints_in_its_own_thread(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()  # the schema, in the database file
    journal = SqliteJournal(path, shared=shared)
    try:
        assert journal._writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        _fill(journal, 5)
        # Five requests are far from SQLite's own 1,000 pages: only the thread copies them.
        assert eventually(lambda: in_database_file(path) == 5)
    finally:
        journal.close()
    if not shared:
        assert not Path(f"{path}-lock").exists()  # its turn is a lock between its own threads


def test_a_journal_of_its_own_catches_up_between_its_writers_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.db"
    journal = _catching_up(path, monkeypatch)
    checkpointer = journal._checkpoints
    try:
        _fill(journal, 1)
        assert eventually(lambda: checkpointer.caught_up > 0)
        journal._turn.acquire()  # as the writer does for a transaction
        try:
            before = checkpointer.caught_up
            time.sleep(0.6)  # three rounds
            assert checkpointer.caught_up <= before + 1  # waiting for the writer
        finally:
            journal._turn.release()
        waiting = checkpointer.caught_up
        assert eventually(lambda: checkpointer.caught_up > waiting)
        _fill(journal, 3)  # and the writer goes on
        assert eventually(lambda: in_database_file(path) == 4)
    finally:
        journal.close()


def test_a_long_wal_is_caught_up_with_the_writers_turn_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.db"
    journal = _catching_up(path, monkeypatch, shared=True)
    checkpointer = journal._checkpoints
    try:
        _fill(journal, 1)  # the WAL holds pages: every round catches up
        assert eventually(lambda: checkpointer.caught_up > 0)
        fd = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)  # the turn, held by "another writer"
        try:
            before = checkpointer.caught_up  # at most one more: it may have had the turn
            time.sleep(0.6)  # three rounds
            assert checkpointer.caught_up <= before + 1  # waiting for the turn
        finally:
            os.close(fd)
        waiting = checkpointer.caught_up
        assert eventually(lambda: checkpointer.caught_up > waiting)
        assert in_database_file(path) == 1
    finally:
        journal.close()
    assert integrity_ok(path)


def test_the_turn_is_taken_once_a_checkpoint_without_it_finds_few_new_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.db"
    journal = _catching_up(path, monkeypatch)
    checkpointer = journal._checkpoints
    try:
        _fill(journal, 3)
        assert eventually(lambda: checkpointer.caught_up > 0)
        # Nothing was written after the first checkpoint: the one after it, still without
        # the turn, found no new page, and then the turn was taken.
        assert checkpointer.last_taken == (1, 0)
    finally:
        journal.close()
    assert integrity_ok(path)


def test_a_checkpoint_under_a_sustained_load_starts_the_wal_over(tmp_path: Path) -> None:
    """A writer that never pauses: the WAL is still caught up, the turn taken after at most
    `ROUNDS_BEFORE_TAKING` checkpoints without it, and the next write starts it over."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    checkpointer = journal._checkpoints
    endpoint = Endpoint(journal)
    body = json.dumps(impression("v")).encode()
    request = CoreRequest(
        "POST", "/v1/events", body, headers=[("content-type", "application/json")]
    )
    try:
        deadline = time.monotonic() + 30
        while checkpointer.caught_up < 2 and time.monotonic() < deadline:
            assert endpoint.handle(request).status == 204
        assert checkpointer.caught_up >= 2
        assert checkpointer.last_taken is not None
        rounds, grown = checkpointer.last_taken
        assert 1 <= rounds <= checkpoints.ROUNDS_BEFORE_TAKING
        assert grown <= checkpoints.GROWN_WHEN_TAKING or rounds == checkpoints.ROUNDS_BEFORE_TAKING
        pages = journal._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert endpoint.handle(request).status == 204
        # The WAL started over: the next write's pages are at its start.
        after = journal._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert after < pages or after < checkpoints.CATCH_UP_PAGES
    finally:
        journal.close()
    assert integrity_ok(path)


def test_one_of_the_journals_sharing_a_file_checkpoints_it(tmp_path: Path) -> None:
    """`serve --workers`: one checkpointer for the file, and another takes over when it goes."""
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    first, second = SqliteJournal(path, shared=True), SqliteJournal(path, shared=True)
    try:
        _fill(first, 2)
        both = (first._checkpoints, second._checkpoints)
        assert eventually(lambda: sum(c.checkpoints for c in both) > 0)
        assert in_database_file(path) == 2
        (holder,) = [j for j, c in zip((first, second), both, strict=True) if c.checkpoints > 0]
        other = second if holder is first else first
        time.sleep(0.6)  # three rounds: the other one still only looks
        assert other._checkpoints.checkpoints == 0
        holder.close()  # as a worker that stops (or dies: the kernel drops its flock)
        _fill(other, 3)
        assert eventually(lambda: in_database_file(path) == 5)
        # Counted once its checkpoint returns, a moment after the pages are in the file.
        assert eventually(lambda: other._checkpoints.checkpoints > 0)
    finally:
        first.close()
        second.close()
    assert integrity_ok(path)


def test_a_journal_that_leaves_checkpoints_copies_nothing_until_it_closes(tmp_path: Path) -> None:
    """`serve --workers`' parent holds the file while its workers checkpoint it."""
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    journal = SqliteJournal(path)
    try:
        journal.leave_checkpoints()
        _fill(journal, 3)
        time.sleep(0.6)  # three rounds of a checkpointer
        assert in_database_file(path) == 0  # all of it still in the WAL
    finally:
        journal.close()
    assert in_database_file(path) == 3  # SQLite checkpoints as the last connection closes
