"""The identities of the accepted events in a SQLite journal that one process writes, held
by its writer in memory instead of a uuid index in the file.

An identity is an event's (entity_id, uuid, timestamp) cells: the dedupe key. SDKs make a
random uuid per event, so an index led by the uuid puts each event's entry in a page of its
own: a page the commit writes to the WAL and a checkpoint copies again, per event (a batch
of ten events wrote ~13 pages). Here a look-up is a dict probe.

Each identity is held as a hash of its cells (`identity_hash`: the timestamp as text, since
Python hashes integers by their value modulo 2**61 - 1, so -1 and -2 would share one), with
the newest request that holds it. A hit is only a candidate: the journal confirms it in that
request's rows, read by the table's own key, so two identities that share a hash cannot make
an event a duplicate (and one that hides another is as likely as guessing a keyed 64-bit
hash). Requests evicted from the oldest end take their identities with them: the journal
reads the evicted events' identities before it deletes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Identities", "identity_hash"]

Cells = tuple[Any, Any, Any]
"""An identity as stored: entity_id and uuid as text (or None), the timestamp as an int (or
None)."""


def identity_hash(entity_id: Any, uuid: Any, timestamp: Any) -> int:
    """A hash of an identity's cells: strings hash by process-keyed SipHash; the timestamp
    goes in as text, so that no two timestamps hash alike by arithmetic."""
    return hash((entity_id, uuid, None if timestamp is None else str(timestamp)))


class Identities:
    """The accepted events' identities, each with the newest request holding it.

    Changes made in a transaction are visible to look-ups at once (a later job of the same
    transaction sees them, as the table does) and undone by `abort`."""

    def __init__(self) -> None:
        self._newest: dict[int, int] = {}
        self._undo: list[tuple[int, int | None]] = []
        self._cleared = False

    def __len__(self) -> int:
        return len(self._newest)

    def load(self, rows: Iterable[tuple[int, Any, Any, Any]]) -> None:
        """Replace everything with (request_id, entity_id, uuid, timestamp) of the accepted
        events stored, in id order (the newest request holding an identity is the last)."""
        newest: dict[int, int] = {}
        for request_id, entity_id, uuid, timestamp in rows:
            newest[identity_hash(entity_id, uuid, timestamp)] = request_id
        self._newest = newest
        self._undo.clear()
        self._cleared = False

    def holder(self, cells: Cells) -> int | None:
        """The newest request that may hold `cells` (confirm it in its rows), or None."""
        return self._newest.get(identity_hash(*cells))

    def add(self, request_id: int, cells: Cells) -> None:
        """An accepted event of `request_id`, inserted in the transaction under way."""
        self._set(identity_hash(*cells), request_id)

    def evict(self, rows: Iterable[tuple[int, Any, Any, Any]], through: int) -> None:
        """The requests up to id `through` are deleted in the transaction under way, with
        these (request_id, entity_id, uuid, timestamp) accepted events: an identity goes when
        its newest request does (a newer request holding it keeps it)."""
        newest = self._newest
        for _, entity_id, uuid, timestamp in rows:
            key = identity_hash(entity_id, uuid, timestamp)
            holder = newest.get(key)
            if holder is not None and holder <= through:
                self._set(key, None)

    def clear(self) -> None:
        """Every request was deleted in the transaction under way."""
        self._cleared = True
        self._undo.clear()
        self._newest = {}

    def commit(self) -> None:
        """The transaction under way is committed: its changes stay."""
        self._undo.clear()
        self._cleared = False

    def abort(self) -> bool:
        """The transaction under way was rolled back: undo its changes. False when they cannot
        be undone here (it cleared the table): then `load` again from the table."""
        for key, before in reversed(self._undo):
            if before is None:
                self._newest.pop(key, None)
            else:
                self._newest[key] = before
        self._undo.clear()
        if self._cleared:
            self._cleared = False
            return False
        return True

    def _set(self, key: int, request_id: int | None) -> None:
        self._undo.append((key, self._newest.get(key)))
        if request_id is None:
            del self._newest[key]
        else:
            self._newest[key] = request_id
