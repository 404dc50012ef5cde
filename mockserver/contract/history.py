"""Warnings that depend on what arrived before: duplicates and early conversions.

Only accepted events make history: the real backend drops rejected batches,
and a faulted request was never delivered. The journal calls `apply_history`
while it holds its write lock, so the check and the insert are atomic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from ..model import RequestRecord
from ..violations import Violation

__all__ = [
    "Contributions",
    "History",
    "RecentHistory",
    "accepted_keys",
    "apply_history",
    "contributions",
    "dedupe_key",
]

DedupeKey = tuple[Any, Any, Any]


class History(Protocol):
    """What a journal must answer about the accepted events it already holds."""

    def seen(self, keys: list[DedupeKey]) -> set[DedupeKey]:
        """Which of these (entity_id, uuid, timestamp) keys an accepted event already has:
        asked once per batch, so a journal can answer with one query, not one per event."""

    def impression_before(self, visitor_id: Any, timestamp: Any) -> bool:
        """An accepted impression for this visitor exists, at or before `timestamp`."""


def dedupe_key(entity_id: Any, uuid: Any, timestamp: Any) -> DedupeKey:
    """The identity under which Optimizely stores an event once."""
    return (entity_id, uuid, timestamp)


class RecentHistory:
    """Accepted events held in memory: the whole history of a `MemoryJournal`, and the
    requests of one group commit that a `SqliteJournal` has not inserted yet (layered over
    what its table answers, `over`).

    Keys and impressions are counted, so `forget` removes exactly what a record brought
    (the same key may come from several records): a `MemoryJournal` with a cap forgets what
    it evicts, as the SQLite journal's rows go, and both flag the same duplicates."""

    def __init__(self, over: History | None = None, *, known: set[DedupeKey] | None = None) -> None:
        self._over = over
        self._keys: Counter[DedupeKey] = Counter(known or ())
        # Plain dicts of ints, not Counters: the collector leaves those untracked, and a
        # journal holds one per visitor.
        self._impressions: dict[Any, dict[int, int]] = {}

    def remember(self, record: RequestRecord, count: int = 1) -> None:
        """Add an accepted record's events (others make no history)."""
        self.count(contributions(record), count)

    def forget(self, record: RequestRecord) -> None:
        """Take back what `remember(record)` added (the record was evicted)."""
        self.remember(record, -1)

    def count(self, brought: Contributions, count: int) -> None:
        """Add (count 1) or take back (count -1) what a record brought, as `contributions`
        gave it: a memory journal keeps that, not the record, to forget it on eviction."""
        keys = self._keys
        at = iter(brought)  # four values per event
        for entity_id, uuid, timestamp, visitor_id in zip(at, at, at, at, strict=True):
            key = (entity_id, uuid, timestamp)
            total = keys.get(key, 0) + count  # `_add`, inlined: every event passes here
            if total > 0:
                keys[key] = total
            else:
                keys.pop(key, None)
            if visitor_id is not None:
                stamps = self._impressions.setdefault(visitor_id, {})
                _add(stamps, timestamp, count)
                if not stamps:
                    del self._impressions[visitor_id]

    def clear(self) -> None:
        self._keys.clear()
        self._impressions.clear()

    def seen(self, keys: list[DedupeKey]) -> set[DedupeKey]:
        held = self._keys  # holds only counts above zero (`_add`)
        return {key for key in keys if key in held}

    def impression_before(self, visitor_id: Any, timestamp: Any) -> bool:
        if _is_stamp(timestamp) and any(
            t <= timestamp for t in self._impressions.get(visitor_id, ())
        ):
            return True
        return self._over is not None and self._over.impression_before(visitor_id, timestamp)


Contributions = tuple[Any, ...]
"""Flat, four values per accepted event: entity_id, uuid, timestamp, and the visitor_id when
it is an impression with an integer timestamp (else None; an accepted visitor_id is a
string). One flat tuple of plain values, which the garbage collector stops tracking at its
first look."""


def contributions(record: RequestRecord) -> Contributions:
    """What `record` adds to history (nothing unless it was accepted)."""
    if record.verdict != "accepted":
        return ()
    flat: list[Any] = []
    for kind, visitor_id, _, entity_id, uuid, stamp in record.event_cells():
        impression = kind == "impression" and (stamp.__class__ is int or _is_stamp(stamp))
        flat += (entity_id, uuid, stamp, visitor_id if impression else None)
    return tuple(flat)


def _is_stamp(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _add(counts: dict[Any, int], key: Any, count: int) -> None:
    total = counts.get(key, 0) + count
    if total > 0:
        counts[key] = total
    else:
        counts.pop(key, None)


def accepted_keys(records: list[RequestRecord]) -> list[DedupeKey]:
    """The dedupe keys of every event of the accepted records, to ask a journal at once."""
    keys: list[DedupeKey] = []
    for record in records:
        if record.verdict == "accepted":
            keys += record.event_keys()
    return keys


def apply_history(record: RequestRecord, history: History) -> None:
    """Flag duplicates and conversions-before-decision in an accepted record, in place.

    An imported record (`source_id` set) was judged where it first arrived, and brings
    those warnings and flags with it: it is left as it is (it still makes history)."""
    if record.verdict != "accepted" or record.source_id is not None:
        return
    # Read from the cells (`RequestRecord.event_cells`): a clean record's events are not
    # built, and its payload not decoded, even to flag one (`flag_duplicate`, `event_path`).
    cells = record.event_cells()
    keys = record.event_keys()
    seen_before = history.seen(keys)
    conversions = False
    for cell in cells:  # a loop, not any(): no generator per request
        if cell[0] == "conversion":
            conversions = True
            break
    if not seen_before and not conversions and len(set(keys)) == len(keys):
        return  # nothing arrived before, nothing twice, no conversion: no warning to give
    batch_keys: set[DedupeKey] = set()
    batch_impressions: dict[Any, list[Any]] = {}
    for kind, visitor_id, _, _, _, timestamp in cells:
        if kind == "impression":
            batch_impressions.setdefault(visitor_id, []).append(timestamp)
    for index, key in enumerate(keys):
        kind, visitor_id, sent_key, _, uuid, timestamp = cells[index]
        if key in batch_keys or key in seen_before:
            record.flag_duplicate(index)
            record.warnings.append(
                Violation(
                    f"{record.event_path(index)}.uuid",
                    "duplicate_event",
                    "an event with this entity_id, uuid and timestamp arrived before: "
                    "Optimizely stores it once",
                    "a new uuid for each event",
                    uuid,
                )
            )
        batch_keys.add(key)
        if kind == "conversion" and not _decided(visitor_id, timestamp, batch_impressions, history):
            record.warnings.append(
                Violation(
                    record.event_path(index),
                    "conversion_before_decision",
                    f"visitor {visitor_id!r} converted before any impression was recorded: "
                    "results count conversions only for visitors who saw a decision",
                    "an impression for this visitor first",
                    sent_key,
                )
            )


def _decided(
    visitor_id: Any, timestamp: Any, batch: dict[Any, list[Any]], history: History
) -> bool:
    for seen_ts in batch.get(visitor_id, []):
        if isinstance(seen_ts, int) and isinstance(timestamp, int) and seen_ts <= timestamp:
            return True
    return history.impression_before(visitor_id, timestamp)
