"""Checkpoints of a SQLite journal, off the writer's path.

In WAL mode a commit appends pages to the WAL file; a checkpoint copies them back into the
database file, with an fsync of each. SQLite runs one inside the `COMMIT` that takes the WAL
past 1,000 pages (`wal_autocheckpoint`): about 1,000 page copies and two fsyncs, 5-25 ms on
a 2-core machine, during which the requests of that commit wait (a p99 of their own), and
under `serve --workers` the committing writer still holds the writers' turn (writer_lock.py),
so every worker waits. A journal turns that off on its writer connection and checkpoints here
instead: a thread with its own connection, a few times a second, PASSIVE (it neither waits
for nor stops a writer or a reader).

SQLite starts the WAL over only when a checkpoint has copied all of it before the next
write begins; under a load that never pauses, a writer appends while the checkpoint copies,
and the WAL would grow without end. So once it is past `CATCH_UP_PAGES`, this thread takes
the writers' turn for one more checkpoint, and the next write starts the WAL over. The
writers wait as long as that checkpoint takes: the pages that came during the one before,
copied and synced. After a checkpoint of a long WAL (~3,000 pages in ~20 ms under a
sustained load), a few hundred pages had come, and the turn was held 4-8 ms five times a
second, the largest share of the p99 of one SDK impression at ~13,500 requests/s. So the
thread first checkpoints again without the turn, each round copying what came during the
one before (a fraction of it), until a round finds `GROWN_WHEN_TAKING` pages or fewer new
(or after `ROUNDS_BEFORE_TAKING` rounds: a load writing as fast as a checkpoint copies).

The processes sharing a file (`serve --workers`) need one checkpointer between them, not one
each: a checkpoint copies every page written since the last one, so three checkpointers on
one file (the workers' and the parent's) copied the pages every commit rewrites (the tables'
and indexes' right edges) three times as often, each copy with its fsyncs. A shared journal's
thread checkpoints only while it holds `FILE-checkpointer` (an exclusive `flock`, asked for
without waiting at each round and then kept); the kernel lets it go when its process dies or
closes the journal, and another process's thread takes it at its next round.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path

from .writer_lock import Turn

__all__ = [
    "CATCH_UP_PAGES",
    "GROWN_WHEN_TAKING",
    "INTERVAL",
    "ROUNDS_BEFORE_TAKING",
    "Checkpointer",
    "Duty",
]

INTERVAL = 0.2
"""Seconds between checkpoints."""
CATCH_UP_PAGES = 1_000
"""A WAL this long (about 4 MB, where SQLite's own checkpoint would start) is caught up with
the writers' turn held, so the next write starts it over: the WAL file stays near that size."""
GROWN_WHEN_TAKING = 64
"""New pages since the last checkpoint, at most, for the turn to be taken."""
ROUNDS_BEFORE_TAKING = 4
"""Checkpoints without the turn, at most, after the first, before the one with it."""


class Duty:
    """Whether this process's thread is the one that checkpoints a shared file: an exclusive
    `flock` on `DATABASE-checkpointer`, asked for without waiting, kept once had. Where the
    file cannot be opened, every process checkpoints (as each did before)."""

    def __init__(self, database: Path) -> None:
        self.path = Path(f"{database}-checkpointer")
        self._fd: int | None = None
        self.held = False

    def mine(self) -> bool:
        """True if this process checkpoints (now, or from now on)."""
        if self.held:
            return True
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError:
                return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process's thread checkpoints
            return False
        self.held = True
        return True

    def close(self) -> None:
        """Let the duty go (closing the descriptor drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.held = False


class Checkpointer:
    """A thread checkpointing the WAL of the SQLite file that `conn` has open (its own
    connection, used by this thread only) until `close()`; `turn` is its handle on the
    writers' turn (its own: taken, it keeps this process's writer out too); `duty`, for a
    file other processes write too, says whether this process's thread is the one that
    checkpoints it."""

    def __init__(self, conn: sqlite3.Connection, turn: Turn, duty: Duty | None = None) -> None:
        self._conn = conn
        self._turn = turn
        self._duty = duty
        self.checkpoints = 0
        """How many rounds checkpointed (a shared file's thread without the duty skips them)."""
        self._closing = threading.Event()
        self.caught_up = 0
        """How many times the WAL was caught up with the turn held."""
        self.last_taken: tuple[int, int] | None = None
        """When the turn was last taken: after how many checkpoints without it (past the
        first), and how many pages the last of them found new."""
        self._thread = threading.Thread(target=self._run, name="logx-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.wait(INTERVAL):
            if self._duty is not None and not self._duty.mine():
                continue
            try:
                self.checkpoint()
                self.checkpoints += 1
            except sqlite3.Error:
                continue  # another checkpoint runs, or closing: next time

    def checkpoint(self) -> int:
        """Copy what the WAL holds into the database file (catching up with the turn held
        when the WAL is long); returns the WAL's length in pages before."""
        pages = first = self._passive()
        if pages >= CATCH_UP_PAGES:
            rounds = grown = 0
            while rounds < ROUNDS_BEFORE_TAKING:
                now = self._passive()
                rounds += 1
                if now < pages:  # a write started the WAL over: caught up already
                    return first
                grown, pages = now - pages, now
                if grown <= GROWN_WHEN_TAKING:
                    break
            self.last_taken = (rounds, grown)
            self._turn.acquire()
            try:
                self._passive()
            finally:
                self._turn.release()
            self.caught_up += 1
        return first

    def _passive(self) -> int:
        row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[1]) if row and row[1] is not None else 0

    def close(self) -> None:
        """Stop the thread and close its connection (SQLite checkpoints as the last one
        closes)."""
        self._closing.set()
        self._thread.join()
        self._conn.close()
        self._turn.close()
        if self._duty is not None:
            self._duty.close()
