"""The lock the processes writing one SQLite file take in turn (`serve --workers`).

SQLite lets one connection at a time hold a file's write lock; another that asks for it
(`BEGIN IMMEDIATE`) gets SQLITE_BUSY, and its busy handler sleeps and tries again, in
growing steps (1, 2, 5, 10 ... 100 ms), however soon the lock is free: two workers
committing hundreds of times a second spent their time asleep (`--workers 2` ran no
faster than one worker, with a p99 near 100 ms). This lock is taken just before
`BEGIN IMMEDIATE` and released after `COMMIT` or `ROLLBACK`: an exclusive `flock` on a
file beside the database (`FILE-lock`), on which a waiting writer blocks in the kernel
and wakes the moment the other lets go. So SQLite's own lock is always free when asked
for; `busy_timeout` stays as the fallback for a writer that does not take this lock (an
older logx-mock, the `sqlite3` shell). The kernel drops a `flock` when its process
dies, so a `kill -9` never leaves it held.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

__all__ = ["ThreadTurn", "Turn", "WriterLock", "turns"]

log = logging.getLogger("logx_mock")


class Turn(Protocol):
    """The right to write the journal file, taken and let go around each transaction."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class WriterLock:
    """An exclusive, blocking lock on `DATABASE-lock`, opened when first taken (a reader
    that never writes never creates the file)."""

    def __init__(self, database: Path) -> None:
        self.path = Path(f"{database}-lock")
        self._fd: int | None = None
        self._unavailable = False
        self.held = False

    def acquire(self) -> None:
        """Wait until no other writer holds the lock, and take it. Where the lock file
        cannot be made (a read-only folder), carry on without it: SQLite's busy handler
        still serializes the writers, only more slowly. Taken already: nothing to do."""
        if self.held or (self._fd is None and not self._open()):
            return
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks without the GIL; retried on EINTR
        self.held = True

    def release(self) -> None:
        """Let the next writer in (nothing if not held)."""
        if self.held and self._fd is not None:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release and close the file (which stays, for the other processes)."""
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> bool:
        if self._unavailable:
            return False
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            self._unavailable = True
            log.warning(
                "cannot open the writers' lock file %r (%s): the processes sharing the "
                "journal will take turns through SQLite's busy handler, which is slower; "
                "make the folder writable to restore it",
                str(self.path),
                exc.strerror or exc,
            )
            return False
        return True


class ThreadTurn:
    """The turn between the threads of one process that has its file to itself (its writer
    and its checkpoint thread): each holds a `ThreadTurn` over the same `lock`."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.held = False

    def acquire(self) -> None:
        """Wait for the turn and take it (nothing if held already)."""
        if not self.held:
            self._lock.acquire()
            self.held = True

    def release(self) -> None:
        """Let the turn go (nothing if not held)."""
        if self.held:
            self.held = False
            self._lock.release()

    def close(self) -> None:
        """Let the turn go."""
        self.release()


def turns(database: Path, shared: bool) -> tuple[Turn, Turn]:
    """A journal's writer's and checkpoint thread's handles on the writers' turn: the lock
    file when other processes write `database` too, else a lock between the two threads."""
    if shared:
        return WriterLock(database), WriterLock(database)
    lock = threading.Lock()
    return ThreadTurn(lock), ThreadTurn(lock)
