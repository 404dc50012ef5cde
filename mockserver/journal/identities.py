"""The identities of the accepted events in a SQLite journal that one process writes, held
by its writer in memory instead of a uuid index in the file.

An identity is an event's (entity_id, uuid, timestamp) cells: the dedupe key. SDKs make a
random uuid per event, so an index led by the uuid puts each event's entry in a page of its
own: a page the commit writes to the WAL and a checkpoint copies again, per event (a batch
of ten events wrote ~13 pages). Here a look-up is a dict probe.

Each identity is held as the hash of its cells, with the newest request that holds it. A
hit is only a candidate: the journal confirms it in that request's rows, read by the table's
own key, so two identities that share a hash cannot make an event a duplicate. Requests
evicted from the oldest end take their identities with them (an identity whose newest
request is older than the oldest kept is gone); the stale entries are dropped by reading the
table again once they could outnumber the live ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Identities"]

Cells = tuple[Any, Any, Any]
"""An identity as stored: entity_id and uuid as text, the timestamp as an int (or None)."""


class Identities:
    """The accepted events' identities, each with the newest request holding it.

    Changes made in a transaction are visible to look-ups at once (a later job of the same
    transaction sees them, as the table does) and undone by `abort`."""

    def __init__(self) -> None:
        self._newest: dict[int, int] = {}
        self._undo: list[tuple[int, int | None]] = []
        self._cleared = False
        self._oldest_kept = 1
        self._evicted_to: int | None = None
        self._loaded = 0
        """How many identities the last `load` found: the stale entries since are bounded by
        reloading once the map has grown well past it (`needs_reload`)."""

    def __len__(self) -> int:
        return len(self._newest)

    def load(self, rows: Iterable[tuple[int, Any, Any, Any]], oldest_kept: int) -> None:
        """Replace everything with (request_id, entity_id, uuid, timestamp) of the accepted
        events stored, in id order (the newest request holding an identity is the last)."""
        newest: dict[int, int] = {}
        for request_id, entity_id, uuid, timestamp in rows:
            newest[hash((entity_id, uuid, timestamp))] = request_id
        self._newest, self._loaded = newest, len(newest)
        self._oldest_kept = oldest_kept
        self._undo.clear()
        self._cleared, self._evicted_to = False, None

    def holder(self, cells: Cells) -> int | None:
        """The newest request that may hold `cells` (confirm it in its rows), or None when no
        request kept does."""
        request_id = self._newest.get(hash(cells))
        if request_id is None or request_id < self._oldest_kept:
            return None
        return request_id

    def add(self, request_id: int, cells: Cells) -> None:
        """An accepted event of `request_id`, inserted in the transaction under way."""
        key = hash(cells)
        self._undo.append((key, self._newest.get(key)))
        self._newest[key] = request_id

    def clear(self) -> None:
        """Every request was deleted in the transaction under way."""
        self._cleared = True
        self._undo.clear()
        self._newest = {}

    def evict(self, through: int) -> None:
        """Requests up to id `through` were deleted in the transaction under way."""
        self._evicted_to = through

    def commit(self) -> None:
        """The transaction under way is committed: its changes stay."""
        if self._evicted_to is not None:
            self._oldest_kept = max(self._oldest_kept, self._evicted_to + 1)
        self._undo.clear()
        self._cleared, self._evicted_to = False, None

    def abort(self) -> bool:
        """The transaction under way was rolled back: undo its changes. False when they cannot
        be undone here (it cleared the table): then `load` again from the table."""
        for key, before in reversed(self._undo):
            if before is None:
                self._newest.pop(key, None)
            else:
                self._newest[key] = before
        self._undo.clear()
        self._evicted_to = None
        if self._cleared:
            self._cleared = False
            return False
        return True

    def needs_reload(self) -> bool:
        """Whether the stale entries (of evicted requests) may now outnumber the live ones."""
        return self._oldest_kept > 1 and len(self._newest) > 2 * self._loaded + 10_000
