"""Group commits: the writing half of the SQLite and PostgreSQL journals.

One writer thread per journal takes every job waiting (up to 512), runs them in one
transaction (`_write`, the store's own) and commits, and only then wakes their
waiters: so a 204 always means committed, and concurrent requests share one commit.
Threads hand a request over with `append` (a `Future`); coroutines with `commit`: the
requests of one event-loop tick travel as one job, and are woken together by one
callback on the loop, not one thread hop each. A request whose body cannot be
stored fails alone, before the transaction; a transaction that fails fails every
request in it, and the writer carries on with the next jobs.

The fault plan lives in the same database when the journal is shared (`FaultPlan`
over this journal as its `PlanStore`): changes to it travel through the same queue,
and the writer decides every request with the plan inside the transaction that
gives it its id, so the plan and the requests are in one order for every process.
So do the uploaded datafiles (`change_datafiles`): every process follows the stored
set (`follow_datafiles`), within the time its watcher takes to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..contract.datafile import Datafiles
from ..fault_plan import FaultPlan, PlanState, decide_record
from ..model import RequestRecord
from .base import Journal, JournalError
from .datafile_rows import DatafileRow, from_rows, to_rows
from .rows import body_cells

__all__ = ["GroupCommitJournal", "Stored"]

log = logging.getLogger("logx_mock")

Stored = tuple[RequestRecord, tuple[bytes | None, bool]]
"""A request to insert, with its body cells (computed before the transaction)."""
_STOP = object()
_T = TypeVar("_T")
_MAX_JOBS = 512


@dataclass
class _Job:
    """Requests handed over together, a clear (no records), or a change to the fault
    plan; and who waits: a `Future` per request from a thread, or the requests' loop
    and one waiter each."""

    records: list[RequestRecord]
    waiters: list[Any]
    loop: asyncio.AbstractEventLoop | None = None
    failed: dict[int, Exception] = field(default_factory=dict)
    """Requests that cannot be stored, by their index in `records`."""
    change: Callable[[PlanState], Any] | None = None
    datafiles: Callable[[Datafiles], Datafiles] | None = None
    """A change to the stored datafiles."""
    result: Any = None
    """What `change` returned (given to its waiter)."""
    stored: list[Stored] = field(default_factory=list)
    """The records that can be stored, with their body cells."""


def _wake(waiters: list[Any], records: list[RequestRecord], errors: list[Exception | None]) -> None:
    """Tell each waiter how its request went (on the loop, for a tick's waiters): a future
    gets its record or error, a callback (`commit_soon`'s) is called with the error or None."""
    for waiter, record, error in zip(waiters, records, errors, strict=True):
        if callable(waiter):  # no future is
            try:
                waiter(error)
            except Exception:  # the tick's other waiters must still be woken
                log.exception("a commit callback failed")
        elif waiter.done():  # cancelled: the client went away; the record is committed anyway
            continue
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(record)


class GroupCommitJournal(Journal):
    """A journal written by one thread in groups, with its fault plan in the same store.

    Subclasses run the statements of one transaction (`_begin`, `_insert`,
    `_clear_tables`, `_load_plan`, `_save_plan`, `_end`, `_abort`) and call
    `_start_writer` once they can write."""

    def __init__(self, *, max_requests: int | None = None) -> None:
        super().__init__(max_requests=max_requests)
        self.faults = FaultPlan(store=self)
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._ticks: dict[asyncio.AbstractEventLoop, _Job] = {}
        self._plan: tuple[int, PlanState] | None = None
        """The plan as last read or written, with its version (the writer's only)."""
        self._clears_seen = -1  # the first look only learns the count
        self._datafile_followers: list[Callable[[Datafiles], None]] = []
        self._datafiles_seen = -1
        self._datafiles_lock = threading.Lock()
        """One change told at a time: the writer (after its commit) and a watcher (after
        another process's) may both tell one, and a stale one must not come last."""
        """The version of the stored datafiles this process follows."""
        self._datafiles_written: tuple[int, Datafiles] | None = None
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="logx-journal", daemon=True
        )

    @abstractmethod
    def _begin(self) -> int:
        """Start a transaction holding the store's write lock; returns the plan's version."""

    @abstractmethod
    def _insert(self, stored: list[Stored]) -> None:
        """Give the requests their ids, flag their history, and insert them."""

    @abstractmethod
    def _clear_tables(self) -> None:
        """Forget every request (ids keep growing) and grow the generation."""

    @abstractmethod
    def _load_plan(self) -> PlanState:
        """The fault plan as stored."""

    @abstractmethod
    def _save_plan(self, text: str) -> int:
        """Store the plan (its JSON); returns its new version."""

    @abstractmethod
    def _load_datafile_rows(self) -> list[DatafileRow]:
        """The stored datafiles, inside the transaction."""

    @abstractmethod
    def _save_datafile_rows(self, rows: list[DatafileRow]) -> int:
        """Replace the stored datafiles; returns their new version."""

    @abstractmethod
    def _read_datafile_rows(self) -> list[DatafileRow]:
        """The stored datafiles, outside the writer (a watcher, a reader)."""

    @abstractmethod
    def _end(self) -> None:
        """Evict past the cap and commit."""

    @abstractmethod
    def _abort(self) -> None:
        """Roll the transaction back, if one is open."""

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
        self._join_tick(loop, record, waiter)
        return await waiter

    def commit_soon(
        self,
        record: RequestRecord,
        done: Callable[[Exception | None], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`commit` without a coroutine: `done` is called on this loop (`loop`, the running
        one) with the tick's other waiters once the group is committed."""
        # asyncio.get_running_loop() makes a system call (getpid, to tell a forked child):
        # ~3.5 µs, 9 % of the event loop's time per request in `serve`, where the caller
        # knows its loop.
        self._join_tick(loop or asyncio.get_running_loop(), record, done)

    def _join_tick(
        self, loop: asyncio.AbstractEventLoop, record: RequestRecord, waiter: Any
    ) -> None:
        tick = self._ticks.get(loop)
        if tick is None:
            tick = self._ticks[loop] = _Job([], [], loop)
            loop.call_soon(self._hand_over, loop)
        tick.records.append(record)
        tick.waiters.append(waiter)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(self._ticks.pop(loop))

    def change_plan(self, change: Callable[[PlanState], _T]) -> _T:
        """Run `change` on the stored plan in the writer's next transaction (in order with
        the requests committed before and after it); returns what it returned."""
        future: Future[Any] = Future()
        self._queue.put(_Job([], [future], change=change))
        result: _T = future.result()
        return result

    shares_datafiles = True

    def change_datafiles(self, change: Callable[[Datafiles], Datafiles]) -> Datafiles:
        """Replace the stored datafiles with what `change` makes of them, in one step with
        the database's write lock held (two instances uploading at once both count);
        every follower hears of the result."""
        future: Future[Any] = Future()
        self._queue.put(_Job([], [future], datafiles=change))
        result: Datafiles = future.result()
        return result

    def stored_datafiles(self) -> Datafiles:
        """The datafiles the database holds."""
        return from_rows(self._read_datafile_rows())

    def follow_datafiles(self, follower: Callable[[Datafiles], None]) -> None:
        """Call `follower` with the stored datafiles whenever they change (here, or in
        another process)."""
        self._datafile_followers.append(follower)

    def _datafiles_changed(
        self, version: int, datafiles: Datafiles | Callable[[], Datafiles]
    ) -> None:
        """The stored datafiles are at `version` now (`datafiles`, or how to read them):
        tell the followers, once, and never a version older than one told already (a
        watcher's news of an older change can come after the writer told a newer one). (A
        subclass learns the version it opened with, so what was stored before is not a
        change.)"""
        with self._datafiles_lock:
            if version <= self._datafiles_seen:
                return
            self._datafiles_seen = version
            current = datafiles() if callable(datafiles) else datafiles
            for follower in list(self._datafile_followers):
                try:
                    follower(current)
                except Exception:  # a broken follower must not stop the others
                    log.exception("datafile follower failed")

    def _clear_stored(self) -> None:
        """Queue a clear behind the writes already waiting, and wait for its commit."""
        future: Future[Any] = Future()
        self._queue.put(_Job([], [future]))
        future.result()

    def _take_turn(self) -> None:
        """Wait until this writer may write the store (another process's writer, or a thread
        checkpointing it, may have the turn), before the jobs waiting are taken: those that
        come meanwhile join this transaction. Then `_begin` starts it, and `_end` or `_abort`
        lets the turn go. Nothing to wait for here."""

    def _leave_turn(self) -> None:
        """Let the turn go if `_end` or `_abort` did not (a batch that failed before its
        transaction): another process must never wait for a turn this one will not use."""

    def _write_loop(self) -> None:
        while self._write_next():
            pass

    def _write_next(self) -> bool:
        """Wait for a job, take every job waiting, and run them; False once told to stop.

        The writer's references to the batch's records are this call's locals, gone when it
        returns: the records are freed where their last waiter lets them go (a loop's wake-up
        callback, once it has answered them), not here when the next job comes, where freeing
        a group's objects (with the GIL held) had delayed the next group's commit."""
        taken = [self._queue.get()]
        if taken[0] is not _STOP:
            self._take_turn()
        while not self._queue.empty() and len(taken) < _MAX_JOBS:
            taken.append(self._queue.get_nowait())
        jobs = [job for job in taken if isinstance(job, _Job)]
        try:
            if jobs:
                self._run_batch(jobs)
        finally:
            self._leave_turn()
        return _STOP not in taken

    def _run_batch(self, jobs: list[_Job]) -> None:
        for job in jobs:
            job.stored = _storable(job)
        error: Exception | None = None
        try:
            self._write(jobs)
        except Exception as exc:
            self._plan = None  # decided in a transaction that is gone: read it again
            count = sum(len(job.records) for job in jobs)
            log.error(
                "journal write failed (%s), %d request(s) not recorded: %s", self.where, count, exc
            )
            error = JournalError(f"the journal could not record the request: {exc}")
        records = [record for job in jobs for record, _ in job.stored]
        if error is None and records:
            # before the waiters wake: their ids are in last_id
            self._committed(max(record.id for record in records), records)
        written, self._datafiles_written = self._datafiles_written, None
        if error is None and written is not None:
            self._datafiles_changed(*written)
        _settle(jobs, error)

    def _write(self, jobs: list[_Job]) -> None:
        """The jobs in one transaction: every request decided by the plan, then inserted,
        in the order they came; raise to fail them all (nothing of them stays)."""
        try:
            plan = self._plan_now(self._begin())
            # A plan without rules decides nothing and counts nothing (`PlanState.decide`):
            # unless a job changes it, it stays as stored, and its JSON (two dumps, ~20 µs
            # a commit) is not needed to tell.
            watched = bool(plan.slots) or any(job.change is not None for job in jobs)
            before = plan.to_json() if watched else ""
            for job in jobs:
                if job.change is not None:
                    self._change(job, plan)
                elif job.datafiles is not None:
                    self._change_datafiles(job)
                elif not job.records:
                    self._clear_tables()
                elif job.stored:
                    for record, _ in job.stored:
                        decide_record(plan, record)
                    self._insert(job.stored)
            after = plan.to_json() if watched else ""
            if after != before:
                self._plan = (self._save_plan(after), plan)
            self._end()
        except Exception:
            self._abort()
            raise

    @staticmethod
    def _change(job: _Job, plan: PlanState) -> None:
        """A change that fails (a full plan) fails alone; it changed nothing."""
        try:
            job.result = job.change(plan)  # type: ignore[misc]
        except Exception as exc:
            job.failed[0] = exc

    def _change_datafiles(self, job: _Job) -> None:
        current = from_rows(self._load_datafile_rows())
        try:
            changed = job.datafiles(current)  # type: ignore[misc]
        except Exception as exc:  # fails alone; it changed nothing
            job.failed[0] = exc
            return
        version = self._save_datafile_rows(to_rows(changed))
        self._datafiles_written = (version, changed)
        job.result = changed

    def _plan_now(self, version: int) -> PlanState:
        """The stored plan (read again only when another process changed it)."""
        if self._plan is None or self._plan[0] != version:
            self._plan = (version, self._load_plan())
        return self._plan[1]

    def _plan_changed_elsewhere(self, plan: PlanState) -> None:
        """A watcher saw the stored plan change: if it was cleared since this process last
        looked, cut this process's pending delays short (as `DELETE /_mock/faults` does
        on the instance that answers it)."""
        if 0 <= self._clears_seen < plan.clears:
            self.faults.cut_delays_short()
        self._clears_seen = max(self._clears_seen, plan.clears)


def _settle(jobs: list[_Job], error: Exception | None) -> None:
    """Wake the jobs' waiters, in order: a thread's future directly, and each loop's ticks
    in one callback for the whole transaction (a call into a loop from another thread is
    a write to its wake-up pipe, taken with the GIL held: one per commit, not per tick)."""
    ticks: dict[asyncio.AbstractEventLoop, list[_Wakeup]] = {}
    for job in jobs:
        records: list[Any] = job.records or [job.result]  # a clear or a plan change
        errors = [job.failed.get(i, error) for i in range(len(records))]
        if job.loop is None:
            _wake(job.waiters, records, errors)
        else:
            ticks.setdefault(job.loop, []).append((job.waiters, records, errors))
    for loop, wakeups in ticks.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(_wake_ticks, wakeups)


_Wakeup = tuple[list[Any], list[Any], list[Exception | None]]
"""A tick's waiters, with what each gets: its record, or an error."""


def _wake_ticks(wakeups: list[_Wakeup]) -> None:
    for waiters, records, errors in wakeups:
        _wake(waiters, records, errors)


def _storable(job: _Job) -> list[Stored]:
    """The job's requests with their body cells; one that cannot be stored fails alone."""
    stored: list[Stored] = []
    for index, record in enumerate(job.records):
        try:
            stored.append((record, body_cells(record)))
        except (TypeError, ValueError) as exc:
            job.failed[index] = JournalError(f"the journal could not record the request: {exc}")
    return stored
