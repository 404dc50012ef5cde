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
the writers' turn for one more checkpoint (what came during the last one: a few hundred
pages), and the next write starts the WAL over.
"""

from __future__ import annotations

import sqlite3
import threading

from .writer_lock import Turn

__all__ = ["CATCH_UP_PAGES", "INTERVAL", "Checkpointer"]

INTERVAL = 0.2
"""Seconds between checkpoints."""
CATCH_UP_PAGES = 1_000
"""A WAL this long (about 4 MB, where SQLite's own checkpoint would start) is caught up with
the writers' turn held, so the next write starts it over: the WAL file stays near that size."""


class Checkpointer:
    """A thread checkpointing the WAL of the SQLite file that `conn` has open (its own
    connection, used by this thread only) until `close()`; `turn` is its handle on the
    writers' turn (its own: taken, it keeps this process's writer out too)."""

    def __init__(self, conn: sqlite3.Connection, turn: Turn) -> None:
        self._conn = conn
        self._turn = turn
        self._closing = threading.Event()
        self.caught_up = 0
        """How many times the WAL was caught up with the turn held."""
        self._thread = threading.Thread(target=self._run, name="logx-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.wait(INTERVAL):
            try:
                self.checkpoint()
            except sqlite3.Error:
                continue  # another checkpoint runs, or closing: next time

    def checkpoint(self) -> int:
        """Copy what the WAL holds into the database file (catching up with the turn held
        when the WAL is long); returns the WAL's length in pages before."""
        pages = self._passive()
        if pages >= CATCH_UP_PAGES:
            self._turn.acquire()
            try:
                self._passive()
            finally:
                self._turn.release()
            self.caught_up += 1
        return pages

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
