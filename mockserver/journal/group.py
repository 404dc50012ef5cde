"""Group commits: the writing half of the SQLite and PostgreSQL journals.

One writer thread per journal takes every job waiting (up to 512), runs them in one
transaction (`_write`, the store's own) and commits, and only then wakes their
waiters: so a 204 always means committed, and concurrent requests share one commit.
Threads hand a request over with `append` (a `Future`); coroutines with `commit`: the
requests of one event-loop tick travel as one job, and are woken together by one
callback on the loop, not one thread hop each. A request whose body cannot be
stored fails alone, before the transaction; a transaction that fails fails every
request in it, and the writer carries on with the next jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from abc import abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..model import RequestRecord
from .base import Journal, JournalError
from .rows import body_cells

__all__ = ["GroupCommitJournal", "Step", "Stored"]

log = logging.getLogger("logx_mock")

Stored = tuple[RequestRecord, tuple[bytes | None, bool]]
"""A request to insert, with its body cells (computed before the transaction)."""
Step = list[Stored] | None
"""One step of a transaction: requests to insert in this order, or None for a clear."""
_STOP = object()
_MAX_JOBS = 512


@dataclass
class _Job:
    """Requests handed over together (none: a clear), and who waits for them: a
    `Future` per request from a thread, or the requests' loop and one waiter each."""

    records: list[RequestRecord]
    waiters: list[Any]
    loop: asyncio.AbstractEventLoop | None = None
    failed: dict[int, Exception] = field(default_factory=dict)
    """Requests that cannot be stored, by their index in `records`."""


def _wake(waiters: list[Any], records: list[RequestRecord], errors: list[Exception | None]) -> None:
    """Tell each waiter how its request went (on the loop, for a tick's waiters)."""
    for waiter, record, error in zip(waiters, records, errors, strict=True):
        if waiter.done():  # cancelled: the client went away; the record is committed anyway
            continue
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(record)


class GroupCommitJournal(Journal):
    """A journal written by one thread in groups; subclasses say how one group is
    written (`_write`) and call `_start_writer` once they can write."""

    def __init__(self, *, max_requests: int | None = None) -> None:
        super().__init__(max_requests=max_requests)
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._ticks: dict[asyncio.AbstractEventLoop, _Job] = {}
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="logx-journal", daemon=True
        )

    @abstractmethod
    def _write(self, steps: list[Step]) -> None:
        """Run `steps` in one transaction and commit, giving each inserted request its
        id; raise to fail every request of the group (nothing of it may stay)."""

    @property
    def where(self) -> str:
        """The store, as logs and errors name it."""
        return repr(self)

    def _start_writer(self) -> None:
        self._writer_thread.start()

    def _stop_writer(self) -> None:
        if self._writer_thread.is_alive():
            self._queue.put(_STOP)
            self._writer_thread.join()

    def append(self, record: RequestRecord) -> Future[RequestRecord]:
        future: Future[RequestRecord] = Future()
        self._queue.put(_Job([record], [future]))
        return future

    async def commit(self, record: RequestRecord) -> RequestRecord:
        """Join this loop tick's group: handed to the writer as one job once the tick ends."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RequestRecord] = loop.create_future()
        tick = self._ticks.get(loop)
        if tick is None:
            tick = self._ticks[loop] = _Job([], [], loop)
            loop.call_soon(self._hand_over, loop)
        tick.records.append(record)
        tick.waiters.append(waiter)
        return await waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(self._ticks.pop(loop))

    def _clear_stored(self) -> None:
        """Queue a clear behind the writes already waiting, and wait for its commit."""
        future: Future[Any] = Future()
        self._queue.put(_Job([], [future]))
        future.result()

    def _write_loop(self) -> None:
        while True:
            taken = [self._queue.get()]
            while not self._queue.empty() and len(taken) < _MAX_JOBS:
                taken.append(self._queue.get_nowait())
            jobs = [job for job in taken if isinstance(job, _Job)]
            if jobs:
                self._run_batch(jobs)
            if _STOP in taken:
                return

    def _run_batch(self, jobs: list[_Job]) -> None:
        steps: list[Step] = []
        for job in jobs:
            if not job.records:
                steps.append(None)
                continue
            if not steps or steps[-1] is None:
                steps.append([])
            steps[-1].extend(_storable(job))  # type: ignore[union-attr]
        error: Exception | None = None
        try:
            self._write(steps)
        except Exception as exc:
            count = sum(len(job.records) for job in jobs)
            log.error(
                "journal write failed (%s), %d request(s) not recorded: %s", self.where, count, exc
            )
            error = JournalError(f"the journal could not record the request: {exc}")
        ids = [step[-1][0].id for step in steps if step]
        if error is None and ids:
            self._committed(max(ids))  # before the waiters wake: their ids are in last_id
        for job in jobs:
            self._settle(job, error)

    @staticmethod
    def _settle(job: _Job, error: Exception | None) -> None:
        """Wake the job's waiters: a thread's future directly, a loop tick's in one callback."""
        records: list[Any] = job.records or [None]  # a clear: its one waiter gets None
        errors = [job.failed.get(i, error) for i in range(len(records))]
        if job.loop is None:
            _wake(job.waiters, records, errors)
            return
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            job.loop.call_soon_threadsafe(_wake, job.waiters, records, errors)


def _storable(job: _Job) -> list[Stored]:
    """The job's requests with their body cells; one that cannot be stored fails alone."""
    stored: list[Stored] = []
    for index, record in enumerate(job.records):
        try:
            stored.append((record, body_cells(record)))
        except (TypeError, ValueError) as exc:
            job.failed[index] = JournalError(f"the journal could not record the request: {exc}")
    return stored
