"""The memory journal: everything in process memory, guarded by one lock; commits are
immediate (the pytest fixtures, `serve --memory`).

It keeps the rows the SQLite journal stores (`rows.py`), not the records themselves: a
record is a tree of dicts, lists and dataclasses, and a journal of tens of thousands of
them made every full garbage collection walk millions of objects, pausing the server for
hundreds of milliseconds (the `--memory` p99 of benchmarks/NOTES.md). Rows are tuples of
strings, numbers and bytes, which the collector leaves alone. Reads build records again,
as the SQLite journal's do.

Past its cap (`serve --memory` keeps 10,000 by default) the oldest request is forgotten at
once (reads and history skip it), and the forgotten rows leave the lists a slice at a time:
one list shift and one log line per sixteenth of the cap, where one per request cost
`serve --memory` ~20 µs of every request once the cap was reached.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..contract.history import Contributions, RecentHistory, apply_history, contributions
from ..fault_plan import decide_record
from ..model import EventRecord, RequestRecord
from .base import DEFAULT_LIMIT, EventStart, Journal, JournalError, _limit, as_text
from .rows import EVENT_COLUMNS, body_cells, event_rows, meta_text, record_from_row

__all__ = ["MemoryJournal"]

log = logging.getLogger("logx_mock")


_COMPACT_FRACTION = 16
"""Evicted rows stay in memory (unread) until they are this fraction of the cap."""


def _request_id(row: tuple[Any, ...]) -> int:
    return int(row[0])


def _event_id(row: tuple[Any, ...]) -> tuple[int, int]:
    return int(row[0]), int(row[1])


def request_row(record: RequestRecord) -> tuple[Any, ...]:
    """The row the SQLite journal's `requests` table holds for `record`."""
    return (record.id, record.verdict, meta_text(record), *body_cells(record))


class MemoryJournal(Journal):
    """Everything in process memory, guarded by one lock. Commits are immediate."""

    def __init__(self, *, max_requests: int | None = None) -> None:
        super().__init__(max_requests=max_requests)
        self._lock = threading.RLock()
        self._rows: list[tuple[Any, ...]] = []  # request rows, ids ascending
        self._event_rows: list[tuple[Any, ...]] = []  # (request_id, index) ascending
        self._brought: list[Contributions] = []  # what each request added to history
        # Evicted rows leave the lists in slices (`_compact`): before that, the live
        # ones start at these positions, and nothing reads the ones before.
        self._first = 0
        self._first_event = 0
        self._history = RecentHistory()
        self._next_id = 1

    def __repr__(self) -> str:
        return f"<MemoryJournal requests={len(self._rows) - self._first} last_id={self._last_id}>"

    def append(self, record: RequestRecord) -> Future[RequestRecord]:
        future: Future[RequestRecord] = Future()
        try:
            future.set_result(self._store(record))
        except JournalError as exc:
            future.set_exception(exc)
        return future

    async def commit(self, record: RequestRecord) -> RequestRecord:
        return self._store(record)  # committed at once: no future, no hop

    def commit_sync(self, record: RequestRecord) -> RequestRecord:
        return self._store(record)

    def commit_soon(
        self,
        record: RequestRecord,
        done: Callable[[Exception | None], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        try:
            self._store(record)
        except JournalError as exc:
            done(exc)
            return
        done(None)

    def _store(self, record: RequestRecord) -> RequestRecord:
        """Commit `record` (its id, fault decision and history flags), or raise
        JournalError when its payload cannot be stored."""
        with self._lock:
            record.set_id(self._next_id)
            decide_record(self.faults, record)
            apply_history(record, self._history)
            try:
                row = request_row(record)
            except (TypeError, ValueError) as exc:
                raise JournalError(f"the journal could not record it: {exc}") from None
            self._next_id += 1
            brought = contributions(record)
            self._history.count(brought, 1)
            self._brought.append(brought)
            self._rows.append(row)
            self._event_rows += event_rows(record)
            self._evict()
        self._committed(record.id, (record,))
        return record

    def _evict(self) -> None:
        """Forget the oldest requests past the cap at once (reads and history stop seeing
        them); their rows leave memory a slice at a time (`_compact`)."""
        if self.max_requests is None:
            return
        excess = len(self._rows) - self._first - self.max_requests
        if excess <= 0:
            return
        first = self._first
        for brought in self._brought[first : first + excess]:  # as the SQLite journal's rows go
            self._history.count(brought, -1)
        newest_evicted = _request_id(self._rows[first + excess - 1])
        rows, at = self._event_rows, self._first_event  # the evicted events are the first
        while at < len(rows) and rows[at][0] <= newest_evicted:
            at += 1
        self._first_event = at
        self._first = first + excess
        if self._first >= max(1, self.max_requests // _COMPACT_FRACTION):
            self._compact()

    def _compact(self) -> None:
        """Drop the evicted rows from the lists: one slice (and one log line) for many
        evictions, where one per request shifted every list and logged each time."""
        evicted = self._first
        del self._rows[:evicted]
        del self._brought[:evicted]
        del self._event_rows[: self._first_event]
        self._first = self._first_event = 0
        log.info(
            "journal cap %d reached: evicted the %d oldest request(s)", self.max_requests, evicted
        )

    def _after(self, request_id: int) -> int:
        return bisect.bisect_right(self._rows, request_id, lo=self._first, key=_request_id)

    def _events_after(self, request_id: int, index: int | None = None) -> int:
        rows, lo = self._event_rows, self._first_event
        if index is None:
            return bisect.bisect_right(rows, request_id, lo=lo, key=_request_id)
        return bisect.bisect_right(rows, (request_id, index), lo=lo, key=_event_id)

    def _row(self, request_id: int) -> tuple[Any, ...] | None:
        at = self._after(request_id) - 1
        found = at >= self._first and _request_id(self._rows[at]) == request_id
        return self._rows[at] if found else None

    def _duplicates(self, request_id: int) -> set[int]:
        start = self._events_after(request_id - 1)
        return {
            row[1] for row in self._event_rows[start : self._events_after(request_id)] if row[-1]
        }

    def requests(
        self, *, after: int = 0, limit: int = DEFAULT_LIMIT, verdict: str | None = None
    ) -> list[RequestRecord]:
        limit = _limit(limit)
        with self._lock:  # a copy of the list (not of the rows): commits go on meanwhile
            start = self._after(after)
            rows = self._rows[start:] if verdict is not None else self._rows[start : start + limit]
        if verdict is not None:
            rows = [row for row in rows if row[1] == verdict][:limit]
        with self._lock:
            chosen = [(row, self._duplicates(_request_id(row))) for row in rows]
        return [record_from_row(row, duplicates) for row, duplicates in chosen]

    def request(self, request_id: int) -> RequestRecord | None:
        with self._lock:
            row = self._row(request_id)
            duplicates = self._duplicates(request_id) if row else set()
        return record_from_row(row, duplicates) if row else None

    def _select_events(
        self, start: EventStart, limit: int, tail: bool, filters: dict[str, str]
    ) -> list[EventRecord]:
        after, after_index = start
        wanted = [(2 + EVENT_COLUMNS.index(k), as_text(v)) for k, v in filters.items()]
        chosen: list[tuple[int, int, bool]] = []
        with self._lock:  # the scan runs on a copy of the list: commits go on meanwhile
            candidates = self._event_rows[self._events_after(after, after_index) :]
        for row in reversed(candidates) if tail else candidates:
            if all(row[column] == value for column, value in wanted):
                chosen.append((row[0], row[1], bool(row[-1])))
                if len(chosen) >= limit:
                    break
        del candidates
        with self._lock:
            rows = {rid: self._row(rid) for rid in {rid for rid, _, _ in chosen}}
        if tail:
            chosen.reverse()  # the newest `limit`, in arrival order
        return _pick_events(chosen, rows.get)

    def clear(self) -> None:
        with self._lock:  # swap, then free the old rows with the lock released
            dropped = (self._rows, self._event_rows, self._brought)
            self._rows, self._event_rows, self._brought = [], [], []
            self._first = self._first_event = 0
            self._history.clear()
        del dropped
        self._cleared()


def _pick_events(
    chosen: list[tuple[int, int, bool]],
    row_of: Callable[[int], Any],
) -> list[EventRecord]:
    """The events named by (request_id, index, duplicate), in that order, each from its
    request rebuilt once (`row_of` gives a request's row, or None once it is evicted)."""
    wanted: dict[int, dict[int, bool]] = {}
    for request_id, index, duplicate in chosen:
        wanted.setdefault(request_id, {})[index] = duplicate
    found: list[EventRecord] = []
    for request_id, indexes in wanted.items():
        row = row_of(request_id)
        if row is None:
            continue  # evicted between the two reads
        record = record_from_row(row, {i for i, dup in indexes.items() if dup})
        found.extend(e for e in record.events if e.index in indexes)
    return found
