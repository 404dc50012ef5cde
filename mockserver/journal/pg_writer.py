"""The statements of one group commit on PostgreSQL (see `postgres.py` for the design).

Every function runs inside the writer's transaction, after `take_ids` has locked the
state row: so what they read is everything any instance committed before, and
nothing another instance writes can come between them.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..contract.history import DedupeKey, apply_history, dedupe_key
from ..model import EventRecord, RequestRecord
from .group import Stored
from .rows import (
    EVENT_COLUMNS,
    REQUEST_COLUMNS,
    event_row,
    meta_text,
    text_cell,
    timestamp_cell,
)

__all__ = ["GroupHistory", "clear_tables", "evict", "insert", "lock_state", "take_ids"]


Connection = psycopg.Connection[Any]

_INSERT_REQUEST = f"INSERT INTO logx_requests ({REQUEST_COLUMNS}) VALUES (%s, %s, %s, %s, %s)"
_INSERT_EVENT = (
    f"INSERT INTO logx_events (request_id, idx, {', '.join(EVENT_COLUMNS)}, timestamp, "
    f"duplicate) VALUES ({', '.join(['%s'] * (len(EVENT_COLUMNS) + 4))})"
)
_SEEN = (
    "SELECT k.e, k.u, k.t FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS k(e, u, t) "
    "WHERE EXISTS (SELECT 1 FROM logx_events x WHERE x.uuid = k.u "
    "AND x.entity_id IS NOT DISTINCT FROM k.e AND x.timestamp IS NOT DISTINCT FROM k.t "
    "AND x.verdict = 'accepted')"
)
_DECIDED = (
    "SELECT k.v, k.t FROM unnest(%s::text[], %s::bigint[]) AS k(v, t) "
    "WHERE EXISTS (SELECT 1 FROM logx_events x WHERE x.visitor_id = k.v "
    "AND x.kind = 'impression' AND x.timestamp <= k.t AND x.verdict = 'accepted')"
)


def lock_state(conn: Connection) -> int:
    """The transaction's first statement: lock the state row until commit (serializing
    every writer of every instance); returns the fault plan's version."""
    row = conn.execute("UPDATE logx_state SET next_id = next_id RETURNING plan_version").fetchone()
    assert row is not None
    return int(row[0])


def take_ids(conn: Connection, count: int) -> int:
    """Take `count` ids (the state row is locked already); returns the first."""
    row = conn.execute(
        "UPDATE logx_state SET next_id = next_id + %s, count = count + %s RETURNING next_id - %s",
        (count, count, count),
    ).fetchone()
    assert row is not None
    return int(row[0])


def clear_tables(conn: Connection) -> int:
    """Forget every request (ids keep growing); returns the new generation."""
    conn.execute("DELETE FROM logx_requests")
    conn.execute("DELETE FROM logx_events")
    row = conn.execute(
        "UPDATE logx_state SET count = 0, generation = generation + 1 RETURNING generation"
    ).fetchone()
    assert row is not None
    return int(row[0])


def insert(conn: Connection, stored: list[Stored]) -> list[int]:
    """Give the requests their ids, flag their history, and insert them (one
    `executemany` per table); returns their ids."""
    if not stored:
        return []
    first = take_ids(conn, len(stored))
    history = GroupHistory.ask(conn, [record for record, _ in stored])
    request_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    for offset, (record, (body, is_json)) in enumerate(stored):
        record.id = first + offset
        for event in record.events:
            event.request_id = record.id
        apply_history(record, history)
        history.remember(record)
        request_rows.append((record.id, record.verdict, meta_text(record), body, is_json))
        event_rows.extend(event_row(e, clean=True) for e in record.events)
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_REQUEST, request_rows)
        if event_rows:
            cursor.executemany(_INSERT_EVENT, event_rows)
    return [record.id for record, _ in stored]


def evict(conn: Connection, max_requests: int) -> int:
    """Delete the oldest requests past `max_requests`, whoever inserted them; returns how
    many."""
    row = conn.execute("SELECT count FROM logx_state").fetchone()
    assert row is not None
    excess = int(row[0]) - max_requests
    if excess <= 0:
        return 0
    edge = conn.execute(
        "SELECT id FROM logx_requests ORDER BY id OFFSET %s LIMIT 1", (excess - 1,)
    ).fetchone()
    assert edge is not None
    conn.execute("DELETE FROM logx_requests WHERE id <= %s", edge)
    conn.execute("DELETE FROM logx_events WHERE request_id <= %s", edge)
    conn.execute("UPDATE logx_state SET count = count - %s", (excess,))
    return excess


def _key(event: EventRecord) -> DedupeKey:
    return dedupe_key(event.entity_id, event.uuid, event.timestamp)


class GroupHistory:
    """What one group commit knows of history: the database's answers for the whole
    group (asked up front, in two queries, not one per event), plus the accepted
    events of the group's earlier requests, which are not in the tables yet."""

    def __init__(self, seen: set[DedupeKey], decided: set[tuple[Any, Any]]) -> None:
        self._seen = seen
        self._decided = decided
        self._impressions: dict[Any, list[int]] = {}

    @classmethod
    def ask(cls, conn: Connection, records: list[RequestRecord]) -> GroupHistory:
        """Which identities the tables hold, and which conversions follow an impression
        of their visitor, for every accepted event of `records`."""
        accepted = [e for r in records if r.verdict == "accepted" for e in r.events]
        normal = {
            (text_cell(e.entity_id), text_cell(e.uuid), timestamp_cell(e.timestamp)): _key(e)
            for e in accepted
        }
        seen: set[DedupeKey] = set()
        if normal:
            columns = [list(c) for c in zip(*normal, strict=True)]
            seen = {normal[(e, u, t)] for e, u, t in conn.execute(_SEEN, columns)}
        wanted = {
            (text_cell(e.visitor_id), timestamp_cell(e.timestamp))
            for e in accepted
            if e.kind == "conversion" and timestamp_cell(e.timestamp) is not None
        }
        decided: set[tuple[Any, Any]] = set()
        if wanted:
            columns = [list(c) for c in zip(*wanted, strict=True)]
            decided = {(v, t) for v, t in conn.execute(_DECIDED, columns)}
        return cls(seen, decided)

    def seen(self, keys: list[DedupeKey]) -> set[DedupeKey]:
        return {key for key in keys if key in self._seen}

    def impression_before(self, visitor_id: Any, timestamp: Any) -> bool:
        stamp = timestamp_cell(timestamp)
        if stamp is None:
            return False
        visitor = text_cell(visitor_id)
        if (visitor, stamp) in self._decided:
            return True
        return any(t <= stamp for t in self._impressions.get(visitor, ()))

    def remember(self, record: RequestRecord) -> None:
        """Count an inserted record's accepted events for the group's later requests."""
        if record.verdict != "accepted":
            return
        for event in record.events:
            self._seen.add(_key(event))
            stamp = timestamp_cell(event.timestamp)
            if event.kind == "impression" and stamp is not None:
                self._impressions.setdefault(text_cell(event.visitor_id), []).append(stamp)
