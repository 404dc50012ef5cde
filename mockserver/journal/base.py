"""The journal: every request with its verdict, and its flattened events.

`Journal` is the interface the core and the admin API use; `MemoryJournal`
(in `memory.py`) keeps everything in process memory (tests), `SqliteJournal`
(in `sqlite.py`) in a file that survives restarts. Ids only grow, also across `clear()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

from ..errors import ConfigError, JournalError
from ..fault_plan import FaultPlan
from ..model import EventRecord, RequestRecord
from .filters import DECISION_FILTERS, EVENT_FILTERS, as_text, check_filters, event_matches

__all__ = [
    "DEFAULT_LIMIT",
    "EVENT_FILTERS",
    "EVICTIONS_LOGGED_EVERY",
    "MAX_ID",
    "MAX_LIMIT",
    "CommitListener",
    "EventStart",
    "EvictionLog",
    "Journal",
    "JournalError",
    "as_text",
    "check_filters",
    "event_matches",
]

log = logging.getLogger("logx_mock")

MAX_ID = 2**62
"""The largest request id a reader may name (`after`); ids stay below it."""
DEFAULT_LIMIT = 100
"""How many requests or events one read returns unless told (`limit`)."""
MAX_LIMIT = 100_000
"""The most requests or events one read returns (`limit`)."""
_SCAN_CHUNK = 500

EventStart = tuple[int, int | None]
"""Where an events read starts: after request `after`, or, with an index, inside it after
that event (`Journal.events`'s `after` and `after_index`)."""
CommitListener = Callable[[int, Sequence[RequestRecord] | None], None]
"""Called with the newest request id and the records just committed, or None when they
are not known here (another process committed them, or the journal was cleared)."""


EVICTIONS_LOGGED_EVERY = 10.0
"""Seconds between two log lines of the cap's evictions (`EvictionLog`)."""


class EvictionLog:
    """The evictions past a journal's cap, in the log: the first at once ("journal cap N
    reached"), then how many went since, at most once every `EVICTIONS_LOGGED_EVERY`
    seconds. Under a load past the cap every commit evicts: a line each was hundreds a
    second, and ~2 µs of every request's CPU."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._pending = 0
        self._logged_at: float | None = None

    def evicted(self, count: int) -> None:
        """`count` requests were just evicted."""
        self._pending += count
        now = time.monotonic()
        last = self._logged_at
        if last is not None and now - last < EVICTIONS_LOGGED_EVERY:
            return
        since = "" if last is None else f" in the last {now - last:.0f}s"
        log.info(
            "journal cap %d reached: evicted the %d oldest request(s)%s",
            self.cap,
            self._pending,
            since,
        )
        self._logged_at, self._pending = now, 0


class Journal(ABC):
    """Where requests are recorded, and how they are read back.

    Listeners added with `add_listener` are called with the newest request id
    after every commit, from the committing thread; those added with
    `add_commit_listener` also get the records committed (`CommitListener`). The
    journal also holds the fault plan (`faults`) and decides each request with it as
    it commits it, in id order.
    """

    def __init__(self, *, max_requests: int | None = None) -> None:
        if max_requests is not None and max_requests < 1:
            raise ConfigError(f"must be at least 1, got {max_requests}", setting="max_requests")
        self.max_requests = max_requests
        self._evictions = EvictionLog(max_requests or 0)
        self._listeners: list[Callable[[int], None]] = []
        self._commit_listeners: list[CommitListener] = []
        self._changed = threading.Condition()
        self._last_id = 0
        self.generation = 0
        """Grows by one at each `clear()`, so watchers (the web page) know to start over."""
        self.faults = FaultPlan()
        """The fault plan; in memory unless the journal stores it (a shared database)."""

    @abstractmethod
    def append(self, record: RequestRecord) -> Future[RequestRecord]:
        """Record a request; the future resolves once it is committed (id assigned)."""

    def commit_sync(self, record: RequestRecord) -> RequestRecord:
        """`append`, blocking until the record is committed; raises what the commit
        raised (a memory journal commits in the caller's thread, without a future)."""
        return self.append(record).result()

    async def commit(self, record: RequestRecord) -> RequestRecord:
        """`append` for a coroutine: returns once the record is committed, without
        blocking the event loop."""
        future = self.append(record)
        if not future.done():  # a memory journal commits at once: no hop needed
            await asyncio.wrap_future(future)
        return future.result()

    def commit_soon(
        self,
        record: RequestRecord,
        done: Callable[[Exception | None], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`commit` for a callback, from an event loop's thread: `done(None)` once the record
        is committed, or `done(error)`, called on that loop (at once when this journal
        commits in the caller's thread). `done` must not raise. `loop`: the running loop,
        when the caller knows it (asking asyncio costs a system call, `getpid`, each
        time)."""
        future = self.append(record)
        if future.done():
            done(_failure(future))
            return
        where = loop or asyncio.get_running_loop()
        future.add_done_callback(lambda f: where.call_soon_threadsafe(done, _failure(f)))

    @abstractmethod
    def requests(
        self, *, after: int = 0, limit: int = DEFAULT_LIMIT, verdict: str | None = None
    ) -> list[RequestRecord]:
        """Requests with an id greater than `after`, oldest first."""

    @abstractmethod
    def request(self, request_id: int) -> RequestRecord | None:
        """One request with its events, or None."""

    def events(
        self,
        *,
        after: int = 0,
        limit: int = DEFAULT_LIMIT,
        tail: bool = False,
        after_index: int | None = None,
        **filters: str,
    ) -> list[EventRecord]:
        """Events of requests with an id greater than `after` that pass every filter
        (`journal.filters`), in arrival order: the first `limit`, or with `tail` the last
        `limit`. With `after_index`, first the events of request `after` past that index
        (a page that stopped inside a request resumes there). A filter name or an enum
        value it cannot take raises ConfigError."""
        check_filters(filters)
        limit = _limit(limit)
        if any(name in DECISION_FILTERS for name in filters):
            return self._scan_events((after, after_index), limit, tail, filters)
        return self._select_events((after, after_index), limit, tail, filters)

    def _select_events(
        self, start: EventStart, limit: int, tail: bool, filters: dict[str, str]
    ) -> list[EventRecord]:
        """`events` for filters on the event itself (`COLUMN_FILTERS`): a store with
        columns for them answers from those; by default every event is compared."""
        return self._scan_events(start, limit, tail, filters)

    def _scan_events(
        self, start: EventStart, limit: int, tail: bool, filters: dict[str, str]
    ) -> list[EventRecord]:
        """Every event compared in turn (decisions are not columns): read in chunks, so
        memory holds one chunk and the `limit` found."""
        after, after_index = start
        found: deque[EventRecord] = deque(maxlen=limit if tail else None)
        for record in self.scan(after=after if after_index is None else after - 1):
            for event in record.events:
                if record.id == after and after_index is not None and event.index <= after_index:
                    continue
                if event_matches(event, filters):
                    found.append(event)
                    if not tail and len(found) >= limit:
                        return list(found)
        return list(found)

    @abstractmethod
    def clear(self) -> None:
        """Forget every request (ids keep growing)."""

    def scan(self, *, after: int = 0, until: int | None = None) -> Iterator[RequestRecord]:
        """Every request with `after < id <= until`, oldest first, with its events, read a
        few hundred at a time: memory holds one chunk, whatever the journal's size."""
        while True:
            found = self.requests(after=after, limit=_SCAN_CHUNK)
            for record in found:
                if until is not None and record.id > until:
                    return
                yield record
            if len(found) < _SCAN_CHUNK:
                return
            after = found[-1].id

    def repeated_uuids(self, *, after: int = 0) -> set[str] | None:
        """The uuids more than one accepted event carries (a superset will do), so a reader
        looking for duplicates remembers only those; None: not known, remember all."""
        return None

    def close(self) -> None:  # noqa: B027  (nothing to release by default)
        """Release files and threads; the journal is unusable after."""

    @property
    def last_id(self) -> int:
        """The id of the newest request recorded (0 when none ever was)."""
        return self._last_id

    def add_listener(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._commit_listeners.append(listener)

    def remove_commit_listener(self, listener: CommitListener) -> None:
        if listener in self._commit_listeners:
            self._commit_listeners.remove(listener)

    def wait_for(self, after: int, timeout: float) -> bool:
        """Block until a request newer than `after` is committed, or `timeout` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: self._last_id > after, timeout=timeout)

    def _committed(self, last_id: int, records: Sequence[RequestRecord] | None = None) -> None:
        """Requests up to `last_id` are committed (here, or by another process: both may
        report the same commit; listeners hear of it once). `records`: the ones this
        process committed, when it knows them all."""
        with self._changed:
            if last_id <= self._last_id:
                return
            self._last_id = last_id
            self._changed.notify_all()
        self._notify(last_id, records)

    def _cleared(self) -> None:
        self.generation += 1
        self._notify(self._last_id)

    def _notify(self, last_id: int, records: Sequence[RequestRecord] | None = None) -> None:
        for listener in list(self._listeners):
            try:
                listener(last_id)
            except Exception:  # a broken listener must not stop recording
                log.exception("journal listener failed")
        for commit_listener in list(self._commit_listeners):
            try:
                commit_listener(last_id, records)
            except Exception:
                log.exception("journal listener failed")


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"must be between 1 and {MAX_LIMIT:,}, got {limit}", setting="limit")
    return limit


def _failure(future: Future[RequestRecord]) -> Exception | None:
    """What a commit's future failed with, if it did."""
    error = future.exception()
    return error if error is None or isinstance(error, Exception) else JournalError(repr(error))
