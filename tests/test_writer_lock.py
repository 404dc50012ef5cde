"""The writers' lock: processes sharing one SQLite journal take turns through a `flock`
(`FILE-lock`), a waiting writer wakes when the lock is let go, and nothing is lost."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future, wait
from pathlib import Path

import pytest
from helpers import impression

from mockserver import CoreRequest, Endpoint, RequestRecord, SqliteJournal

HEADERS = [("content-type", "application/json")]

# One process writing the shared journal: `threads` threads each send `per_thread`
# impressions (several at once, so the writer groups them), visitor ids tagged by process.
_WRITER = textwrap.dedent(
    """
    import json, sys, threading
    from mockserver import CoreRequest, Endpoint, SqliteJournal
    path, tag, per_thread, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, sys.argv[5])
    from helpers import impression
    journal = SqliteJournal(path, shared=True)
    endpoint = Endpoint(journal)
    statuses = []
    def send(t):
        for i in range(per_thread):
            body = json.dumps(impression(f"{tag}-{t}-{i}")).encode()
            request = CoreRequest("POST", "/v1/events", body,
                                  headers=[("content-type", "application/json")])
            statuses.append(endpoint.handle(request).status)
    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for w in workers: w.start()
    for w in workers: w.join()
    journal.close()
    print(json.dumps(statuses))
    """
)


def _record(journal: SqliteJournal, visitor: str) -> RequestRecord:
    """A judged request, ready to append."""
    body = json.dumps(impression(visitor)).encode()
    return Endpoint(journal)._judge(CoreRequest("POST", "/v1/events", body, headers=HEADERS))


def _hold(lock_file: Path) -> int:
    """Take the writers' lock from outside (its own open file: it excludes the journal's)."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_writer_waits_for_the_lock_and_goes_on_when_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, shared=True)
    try:
        first = journal.append(_record(journal, "before")).result(timeout=30)
        assert first.id == 1
        fd = _hold(Path(f"{path}-lock"))
        waiting: Future[RequestRecord] = journal.append(_record(journal, "waiting"))
        done, _ = wait([waiting], timeout=0.5)
        assert not done  # the writer is blocked on the lock, not committing past it
        assert [r.id for r in journal.requests()] == [1]
        os.close(fd)  # closing the descriptor lets the lock go
        assert waiting.result(timeout=30).id == 2
        assert [r.id for r in journal.requests()] == [1, 2]
    finally:
        journal.close()


def test_a_writer_killed_holding_the_lock_does_not_stop_the_others(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from mockserver.journal.writer_lock import WriterLock; "
            "from pathlib import Path; lock = WriterLock(Path(sys.argv[1])); lock.acquire(); "
            "print('held', flush=True); time.sleep(600)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(BlockingIOError):
            os.close(_hold(Path(f"{path}-lock")))  # it is held, by the other process
        holder.kill()  # kill -9: the kernel lets its flock go
        holder.wait(timeout=30)
        journal = SqliteJournal(path, shared=True)
        try:
            assert journal.append(_record(journal, "after")).result(timeout=30).id == 1
        finally:
            journal.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_two_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    per_thread, threads = 40, 6
    tests = str(Path(__file__).parent)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), tag, str(per_thread), str(threads), tests],
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        assert json.loads(out) == [204] * (per_thread * threads)
    assert Path(f"{path}-lock").is_file()
    total = 2 * per_thread * threads
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [row[0] for row in conn.execute("SELECT id FROM requests ORDER BY id")]
        visitors = {row[0] for row in conn.execute("SELECT visitor_id FROM events")}
    assert ids == list(range(1, total + 1))  # contiguous: no id lost or taken twice
    assert visitors == {
        f"{tag}-{t}-{i}" for tag in "ab" for t in range(threads) for i in range(per_thread)
    }


def test_closing_a_shared_journal_waits_for_its_watcher(tmp_path: Path) -> None:
    """A shared journal's thread that watches for other processes' commits reads through the
    journal's reader connection: it has stopped by the time `close()` closes that."""
    journal = SqliteJournal(tmp_path / "j.db", shared=True)
    watchers = [t for t in threading.enumerate() if t.name == "logx-journal-watch"]
    assert watchers and all(t.is_alive() for t in watchers)
    mine = journal._watcher
    assert mine in watchers
    time.sleep(0.12)  # a few of its rounds
    journal.close()
    assert mine is not None and not mine.is_alive()


def test_a_reader_never_makes_the_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    reader = SqliteJournal(path, shared=True)
    assert reader.requests() == []
    reader.close()
    assert not Path(f"{path}-lock").exists()
    SqliteJournal(path).close()  # a journal of its own holds the whole file: no lock file
    assert not Path(f"{path}-lock").exists()


def test_without_a_lock_file_the_writers_still_take_turns_through_sqlite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    Path(f"{path}-lock").mkdir()  # cannot be opened as the lock file
    caplog.set_level("WARNING", logger="logx_mock")
    journal = SqliteJournal(path, shared=True)
    try:
        ids = [journal.append(_record(journal, f"v{i}")).result(timeout=30).id for i in range(3)]
    finally:
        journal.close()
    assert ids == [1, 2, 3]
    assert caplog.text.count("cannot open the writers' lock file") == 1  # said once
    assert "SQLite's busy handler" in caplog.text


def test_requests_that_come_while_a_writer_waits_join_its_turn(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, shared=True)
    commits: list[list[int]] = []
    journal.add_commit_listener(lambda last, records: commits.append([r.id for r in records or []]))
    try:
        fd = _hold(Path(f"{path}-lock"))
        first = journal.append(_record(journal, "first"))
        deadline = time.monotonic() + 30
        while not journal._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the writer has taken it, and waits for its turn
        later = [journal.append(_record(journal, f"later-{i}")) for i in range(3)]
        os.close(fd)
        assert [f.result(timeout=30).id for f in (first, *later)] == [1, 2, 3, 4]
    finally:
        journal.close()
    assert commits == [[1, 2, 3, 4]]  # one transaction, not the first alone and then the rest
