"""The journal: every request with its verdict, and its flattened events.

`Journal` is the interface the core and the admin API use; `MemoryJournal`
(in `memory.py`) keeps everything in process memory (tests), `SqliteJournal`
(in `sqlite.py`) in a file that survives restarts. Ids only grow, also across `clear()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from ..errors import ConfigError, JournalError
from ..fault_plan import FaultPlan
from ..model import EventRecord, RequestRecord

__all__ = [
    "DEFAULT_LIMIT",
    "EVENT_FILTERS",
    "MAX_ID",
    "MAX_LIMIT",
    "Journal",
    "JournalError",
    "as_text",
    "event_matches",
]

log = logging.getLogger("logx_mock")

EVENT_FILTERS = (
    "visitor_id",
    "key",
    "kind",
    "entity_id",
    "uuid",
    "account_id",
    "project_id",
    "client_name",
    "verdict",
)
MAX_ID = 2**62
"""The largest request id a reader may name (`after`); ids stay below it."""
DEFAULT_LIMIT = 100
"""How many requests or events one read returns unless told (`limit`)."""
MAX_LIMIT = 100_000
"""The most requests or events one read returns (`limit`)."""
_SCAN_CHUNK = 500


def as_text(value: Any) -> str | None:
    """The text form filters compare against (JSON spelling for booleans)."""
    if value is None:
        return None
    kind = value.__class__
    if kind is str and value.isascii():  # most cells: nothing to do
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    text = str(value)
    if not text.isascii():
        # Lone surrogates (valid JSON escapes) have no UTF-8 form; SQLite needs one.
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def check_filters(filters: dict[str, str]) -> None:
    unknown = sorted(set(filters) - set(EVENT_FILTERS))
    if unknown:
        raise ConfigError(
            f"unknown event filter(s) {', '.join(unknown)}; use {', '.join(EVENT_FILTERS)}"
        )


def event_matches(event: EventRecord, filters: dict[str, str]) -> bool:
    """Whether `event` passes every event filter (exact match on the text form)."""
    return all(as_text(getattr(event, k)) == as_text(v) for k, v in filters.items())


class Journal(ABC):
    """Where requests are recorded, and how they are read back.

    Listeners added with `add_listener` are called with the newest request id
    after every commit, from the committing thread. The journal also holds the fault
    plan (`faults`) and decides each request with it as it commits it, in id order.
    """

    def __init__(self, *, max_requests: int | None = None) -> None:
        if max_requests is not None and max_requests < 1:
            raise ConfigError(f"must be at least 1, got {max_requests}", setting="max_requests")
        self.max_requests = max_requests
        self._listeners: list[Callable[[int], None]] = []
        self._changed = threading.Condition()
        self._last_id = 0
        self.generation = 0
        """Grows by one at each `clear()`, so watchers (the web page) know to start over."""
        self.faults = FaultPlan()
        """The fault plan; in memory unless the journal stores it (a shared database)."""

    @abstractmethod
    def append(self, record: RequestRecord) -> Future[RequestRecord]:
        """Record a request; the future resolves once it is committed (id assigned)."""

    async def commit(self, record: RequestRecord) -> RequestRecord:
        """`append` for a coroutine: returns once the record is committed, without
        blocking the event loop."""
        future = self.append(record)
        if not future.done():  # a memory journal commits at once: no hop needed
            await asyncio.wrap_future(future)
        return future.result()

    @abstractmethod
    def requests(
        self, *, after: int = 0, limit: int = DEFAULT_LIMIT, verdict: str | None = None
    ) -> list[RequestRecord]:
        """Requests with an id greater than `after`, oldest first."""

    @abstractmethod
    def request(self, request_id: int) -> RequestRecord | None:
        """One request with its events, or None."""

    @abstractmethod
    def events(
        self, *, after: int = 0, limit: int = DEFAULT_LIMIT, **filters: str
    ) -> list[EventRecord]:
        """Events of requests with an id greater than `after`, in arrival order."""

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

    def wait_for(self, after: int, timeout: float) -> bool:
        """Block until a request newer than `after` is committed, or `timeout` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: self._last_id > after, timeout=timeout)

    def _committed(self, last_id: int) -> None:
        """Requests up to `last_id` are committed (here, or by another process: both may
        report the same commit; listeners hear of it once)."""
        with self._changed:
            if last_id <= self._last_id:
                return
            self._last_id = last_id
            self._changed.notify_all()
        self._notify(last_id)

    def _cleared(self) -> None:
        self.generation += 1
        self._notify(self._last_id)

    def _notify(self, last_id: int) -> None:
        for listener in list(self._listeners):
            try:
                listener(last_id)
            except Exception:  # a broken listener must not stop recording
                log.exception("journal listener failed")


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"must be between 1 and {MAX_LIMIT:,}, got {limit}", setting="limit")
    return limit
