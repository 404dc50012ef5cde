"""Who is woken by a commit: long-polls whose filter can match it, and the page's streams.

One journal listener per event loop, however many clients wait: commits heard from
any thread are gathered and delivered in one loop callback, where each long-poll is
woken only if a committed event passes its filters (every one is, when the records
are not known here: another process committed them, or the journal was cleared).
Each woken client re-reads only what is newer than what it read before.

Both kinds of client are capped (`MAX_WAITERS`, `MAX_STREAMS`); past the cap a client
gets `Busy`, which the handlers answer with a 503 that says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from ..journal.base import Journal, event_matches
from ..model import RequestRecord

__all__ = ["MAX_STREAMS", "MAX_WAITERS", "Busy", "Wakeups"]

MAX_WAITERS = 256
"""Long-polls (`/_mock/events?wait=`) waiting at once, per server process."""
MAX_STREAMS = 64
"""Page streams (`/_mock/stream`) open at once, per server process."""


class Busy(Exception):
    """Too many clients wait already; the message says which cap and what to do."""


class _Waiter:
    def __init__(self, after: int, filters: dict[str, str]) -> None:
        self.after = after
        self.filters = filters
        self.woken = asyncio.Event()

    def wants(self, records: Sequence[RequestRecord]) -> bool:
        return any(
            record.id > self.after and any(event_matches(e, self.filters) for e in record.events)
            for record in records
        )


class Wakeups:
    """The waiting clients of one journal on one event loop."""

    _hubs: dict[tuple[int, int], Wakeups] = {}

    def __init__(self, journal: Journal, loop: asyncio.AbstractEventLoop) -> None:
        self._journal = journal
        self._loop = loop
        self._lock = threading.Lock()
        self._heard: list[Sequence[RequestRecord] | None] = []
        self._scheduled = False
        self._waiters: set[_Waiter] = set()
        self._streams: set[asyncio.Event] = set()

    @classmethod
    def of(cls, journal: Journal) -> Wakeups:
        """The hub of `journal` on the running loop."""
        loop = asyncio.get_running_loop()
        key = (id(journal), id(loop))
        hub = cls._hubs.get(key)
        if hub is None or hub._journal is not journal or hub._loop is not loop:
            hub = cls._hubs[key] = Wakeups(journal, loop)
        return hub

    async def wait(
        self,
        after: int,
        filters: dict[str, str],
        deadline: float,
        gone: Callable[[], Awaitable[Any]] | None = None,
    ) -> bool:
        """Wait until the journal commits, after request `after`, an event passing
        `filters` (or something not known here), or the deadline, or `gone` (the client
        left: its place is freed at once); Busy past the cap."""
        if len(self._waiters) >= MAX_WAITERS:
            raise Busy(
                f"{MAX_WAITERS} long-polls are waiting already; ask again without `wait`, or later"
            )
        waiter = _Waiter(after, filters)
        with self._joined(self._waiters, waiter):
            if self._journal.last_id > after:  # committed before this waiter was heard
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            woken = asyncio.ensure_future(waiter.woken.wait())
            left = asyncio.ensure_future(gone() if gone is not None else asyncio.Future())
            try:
                await asyncio.wait({woken, left}, timeout=remaining, return_when="FIRST_COMPLETED")
            finally:
                woken.cancel()
                left.cancel()
            return waiter.woken.is_set()

    def check_room(self) -> None:
        """Busy when `MAX_STREAMS` streams are open (checked before a stream's answer
        starts; the stream watches once it runs, so a client gone before that holds
        nothing)."""
        if len(self._streams) >= MAX_STREAMS:
            raise Busy(
                f"{MAX_STREAMS} pages are watching already; close one of them, or read "
                "/_mock/requests without a stream"
            )

    def watch(self) -> asyncio.Event:
        """An event set after every commit or clear, until `unwatch`."""
        changed = asyncio.Event()
        self._join(self._streams, changed)
        return changed

    def unwatch(self, changed: asyncio.Event) -> None:
        self._leave(self._streams, changed)

    @contextlib.contextmanager
    def _joined(self, members: set[_Waiter], member: _Waiter) -> Iterator[None]:
        self._join(members, member)
        try:
            yield
        finally:
            self._leave(members, member)

    def _join(self, members: set[Any], member: object) -> None:
        if not self._waiters and not self._streams:
            self._journal.add_commit_listener(self._hear)
        members.add(member)

    def _leave(self, members: set[Any], member: object) -> None:
        members.discard(member)
        if not self._waiters and not self._streams:
            self._journal.remove_commit_listener(self._hear)
            Wakeups._hubs.pop((id(self._journal), id(self._loop)), None)

    def _hear(self, last_id: int, records: Sequence[RequestRecord] | None) -> None:
        """From the committing thread: gather, and wake the loop once for all of them."""
        with self._lock:
            self._heard.append(records)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to wake
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            heard, self._heard, self._scheduled = self._heard, [], False
        unknown = any(records is None for records in heard)
        committed = [r for records in heard if records is not None for r in records]
        for waiter in self._waiters:
            if unknown or waiter.wants(committed):
                waiter.woken.set()
        for changed in self._streams:
            changed.set()
