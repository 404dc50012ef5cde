"""Warnings that depend on what arrived before: duplicates and early conversions.

Only accepted events make history: the real backend drops rejected batches,
and a faulted request was never delivered. The journal calls `apply_history`
while it holds its write lock, so the check and the insert are atomic.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..model import RequestRecord
from ..violations import Violation

__all__ = ["History", "apply_history", "dedupe_key"]

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


def apply_history(record: RequestRecord, history: History) -> None:
    """Flag duplicates and conversions-before-decision in an accepted record, in place."""
    if record.verdict != "accepted":
        return
    batch_keys: set[DedupeKey] = set()
    batch_impressions: dict[Any, list[Any]] = {}
    for event in record.events:
        if event.kind == "impression":
            batch_impressions.setdefault(event.visitor_id, []).append(event.timestamp)
    keys = [dedupe_key(e.entity_id, e.uuid, e.timestamp) for e in record.events]
    seen_before = history.seen(keys)
    for event, key in zip(record.events, keys, strict=True):
        if key in batch_keys or key in seen_before:
            event.duplicate = True
            record.warnings.append(
                Violation(
                    f"{event.path}.uuid",
                    "duplicate_event",
                    "an event with this entity_id, uuid and timestamp arrived before: "
                    "Optimizely stores it once",
                    "a new uuid for each event",
                    event.uuid,
                )
            )
        batch_keys.add(key)
        if event.kind == "conversion" and not _decided(
            event.visitor_id, event.timestamp, batch_impressions, history
        ):
            record.warnings.append(
                Violation(
                    event.path,
                    "conversion_before_decision",
                    f"visitor {event.visitor_id!r} converted before any impression was recorded: "
                    "results count conversions only for visitors who saw a decision",
                    "an impression for this visitor first",
                    event.key,
                )
            )


def _decided(
    visitor_id: Any, timestamp: Any, batch: dict[Any, list[Any]], history: History
) -> bool:
    for seen_ts in batch.get(visitor_id, []):
        if isinstance(seen_ts, int) and isinstance(timestamp, int) and seen_ts <= timestamp:
            return True
    return history.impression_before(visitor_id, timestamp)
