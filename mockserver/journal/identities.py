"""The identities of the accepted events in a SQLite journal, held in memory by each process
that writes it instead of a uuid index in the file.

An identity is an event's (entity_id, uuid, timestamp) cells: the dedupe key. SDKs make a
random uuid per event, so an index led by the uuid puts each event's entry in a page of its
own: a page the commit writes to the WAL and a checkpoint copies again, per event (a batch
of ten events wrote ~13 pages). Here a look-up is a dict probe.

Each identity is held as a hash of its cells (`identity_hash`: the timestamp as text, since
Python hashes integers by their value modulo 2**61 - 1, so -1 and -2 would share one), with
the newest request that holds it. A commit's identities are hashed once, then looked up and
added together (`identity_hashes`, `holders`, `add_many`). A hit is only a candidate: the
journal confirms it in that request's rows, read by the table's own key. So two identities
that share a hash cannot make an event a duplicate (and one that hides another is as likely
as guessing a keyed 64-bit hash), and an identity whose requests are gone (evicted or
cleared, by this process or by another one sharing the file) makes none either: it only
takes memory until `trim`.

Identities come in request-id order (the file's when it is read, then each transaction's,
another process's rows first) and are also kept in that order, with their requests' ids:
`trim` finds those of the requests evicted from the oldest end without reading the rows
deleted, which another process may have deleted already. ~16 bytes an event more.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = ["Identities", "identity_hash", "identity_hashes"]

Cells = tuple[Any, Any, Any]
"""An identity as stored: entity_id and uuid as text (or None), the timestamp as an int (or
None)."""


def identity_hash(entity_id: Any, uuid: Any, timestamp: Any) -> int:
    """A hash of an identity's cells: strings hash by process-keyed SipHash; the timestamp
    goes in as text (None as 'None', which no integer's text is), so that no two timestamps
    hash alike by arithmetic."""
    return hash((entity_id, uuid, str(timestamp)))


def identity_hashes(cells: list[Cells]) -> list[int]:
    """`identity_hash` of each identity (a comprehension, no call each)."""
    return [hash((entity_id, uuid, str(stamp))) for entity_id, uuid, stamp in cells]


class Identities:
    """The accepted events' identities, each with the newest request holding it.

    Changes made in a transaction are visible to look-ups at once (a later job of the same
    transaction sees them, as the table does) and undone by `abort`."""

    def __init__(self) -> None:
        self._newest: dict[int, int] = {}
        self._undo: list[tuple[int, int | None]] = []
        self._cleared = False
        self._ids: deque[int] = deque()
        self._keys: deque[int] = deque()
        """Every identity held (its hash) with its request's id, in id order, oldest first:
        some may since be held by a newer request (`_newest` says which)."""
        self._added = 0
        """How many of them the transaction under way added (at the newest end)."""
        self._trimmed: list[tuple[int, int]] = []
        """The (id, hash) `trim` took in the transaction under way, oldest first."""

    def __len__(self) -> int:
        return len(self._newest)

    def load(self, rows: Iterable[tuple[int, Any, Any, Any]]) -> None:
        """Replace everything with (request_id, entity_id, uuid, timestamp) of the accepted
        events stored, in id order (the newest request holding an identity is the last)."""
        newest: dict[int, int] = {}
        ids: deque[int] = deque()
        keys: deque[int] = deque()
        last = -1
        for request_id, entity_id, uuid, timestamp in rows:
            if request_id == last:
                request_id = last  # one int for a request's events, not one each
            last = request_id
            key = identity_hash(entity_id, uuid, timestamp)
            newest[key] = request_id
            ids.append(request_id)
            keys.append(key)
        self._newest, self._ids, self._keys = newest, ids, keys
        self._undo.clear()
        self._trimmed.clear()
        self._added = 0
        self._cleared = False

    def holder(self, cells: Cells) -> int | None:
        """The newest request that may hold `cells` (confirm it in its rows), or None."""
        return self._newest.get(identity_hash(*cells))

    def holders(self, keys: list[int]) -> list[int | None]:
        """`holder` of each identity, by its hash (`identity_hashes`)."""
        return list(map(self._newest.get, keys))

    def add(self, request_id: int, cells: Cells) -> None:
        """An accepted event of `request_id` (no older than any added before), inserted in
        the transaction under way, or another process's found in it."""
        self.add_many([request_id], [identity_hash(*cells)])

    def add_many(self, request_ids: list[int], keys: list[int]) -> None:
        """`add` of accepted events, by their requests' ids and their identities' hashes
        (`identity_hashes`), in order."""
        newest = self._newest
        # What each held before, for `abort` (a hash twice in `keys`: its earlier value
        # twice, and the undo, newest change first, ends on it)
        self._undo.extend(zip(keys, map(newest.get, keys), strict=True))
        newest.update(zip(keys, request_ids, strict=True))
        self._ids.extend(request_ids)
        self._keys.extend(keys)
        self._added += len(keys)

    def trim(self, through: int) -> None:
        """The requests up to id `through` are gone (deleted in the transaction under way, or
        by another process): an identity goes when its newest request does (a newer request
        holding it keeps it)."""
        ids, keys, newest, trimmed = self._ids, self._keys, self._newest, self._trimmed
        while ids and ids[0] <= through:
            own = len(ids) <= self._added  # added in this transaction (a cap under its size)
            request_id, key = ids.popleft(), keys.popleft()
            if own:
                self._added -= 1  # nothing to give back if it is rolled back
            else:
                trimmed.append((request_id, key))
            holder = newest.get(key)
            if holder is not None and holder <= through:
                self._set(key, None)

    def clear(self) -> None:
        """Every request was deleted in the transaction under way."""
        self._cleared = True
        self._undo.clear()
        self._trimmed.clear()
        self._newest, self._ids, self._keys, self._added = {}, deque(), deque(), 0

    def commit(self) -> None:
        """The transaction under way is committed: its changes stay."""
        self._undo.clear()
        self._trimmed.clear()
        self._added = 0
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
        for _ in range(self._added):
            self._ids.pop()
            self._keys.pop()
        self._added = 0
        for request_id, key in reversed(self._trimmed):
            self._ids.appendleft(request_id)
            self._keys.appendleft(key)
        self._trimmed.clear()
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
