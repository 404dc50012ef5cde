"""The durable journal: one SQLite file, written by one thread with group commits.

Every write goes through a queue to a single writer thread. It takes all the
jobs waiting, inserts them with one `executemany` per table in one transaction
and commits, and only then wakes their waiters: so a 204 always means
committed, and concurrent requests share one commit. From the event loop
(`commit`), the requests of one loop tick travel as one job, and their waiters
are woken together by one callback on the loop, not one thread hop each.

WAL mode lets readers run beside the writer. `synchronous=NORMAL` in WAL mode:
a commit is in the WAL file (written, not yet fsynced) before its waiters wake,
so a killed process (`kill -9`) loses nothing acknowledged and the file stays
consistent; a power loss or an OS crash can lose the commits since the last
checkpoint's fsync (the file still opens, consistent, without them).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..contract.flatten import flatten
from ..contract.history import DedupeKey, RecentHistory, accepted_keys, apply_history
from ..model import WITH_EVENTS, EventRecord, RequestRecord
from ..violations import Violation
from .base import _SCAN_CHUNK, EVENT_FILTERS, Journal, JournalError, _limit, as_text, check_filters

__all__ = ["SCHEMA_VERSION", "SqliteJournal"]

log = logging.getLogger("logx_mock")

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    verdict TEXT NOT NULL,
    meta TEXT NOT NULL,
    body BLOB,
    body_is_json INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    request_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    visitor_id TEXT, key TEXT, kind TEXT, entity_id TEXT, uuid TEXT, account_id TEXT,
    project_id TEXT, client_name TEXT, verdict TEXT, timestamp INTEGER,
    duplicate INTEGER NOT NULL,
    PRIMARY KEY (request_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_visitor ON events (visitor_id);
CREATE INDEX IF NOT EXISTS events_key ON events (key);
CREATE INDEX IF NOT EXISTS events_identity ON events (uuid, entity_id, timestamp);
"""
_COLUMNS = EVENT_FILTERS  # each filter is a column of `events` (a new one: a new SCHEMA_VERSION)
_INSERT_EVENT = (
    f"INSERT INTO events (request_id, idx, {', '.join(_COLUMNS)}, timestamp, duplicate) "
    f"VALUES ({', '.join('?' * (len(_COLUMNS) + 4))})"
)
_META_FIELDS = (
    "received_at",
    "method",
    "path",
    "host",
    "client_ip",
    "strict",
    "strict_header",
    "status",
    "fault",
    "keys",
)
_STOP = object()
_REQUEST_COLUMNS = "id, verdict, meta, body, body_is_json"
_INSERT_REQUEST = f"INSERT INTO requests ({_REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
Tick = list[tuple[RequestRecord, "asyncio.Future[RequestRecord]"]]


def _wake(tick: Tick, error: Exception | None) -> None:
    """On the loop: every request of one tick learns the outcome of its commit."""
    for record, waiter in tick:
        if waiter.done():  # cancelled: the client went away; the record is committed anyway
            continue
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(record)


def _records(jobs: list[Any]) -> list[RequestRecord]:
    found: list[RequestRecord] = []
    for kind, item, _ in jobs:
        if kind == "append":
            found.append(item)
        elif kind == "tick":
            found.extend(record for record, _ in item)
    return found


def _timestamp_cell(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63:
        return value
    return None


class SqliteJournal(Journal):
    """A journal in the SQLite file at `path`, created if missing."""

    def __init__(
        self, path: str | Path, *, max_requests: int | None = None, shared: bool = False
    ) -> None:
        """`shared`: other processes write the same file (`serve --workers`); a watcher
        thread then notices their commits and clears, for long-polls and the page.

        Otherwise the journal takes the file for itself (an exclusive `flock`, held until
        `close()`): a second server on the same file is refused with a message, rather than
        silently sharing it (one's `DELETE` would wipe the other's view, long-polls would
        miss the other's commits). `serve --workers` holds that lock in its parent process
        and opens the workers' journals `shared`."""
        super().__init__(max_requests=max_requests)
        self.path = Path(path)
        self.shared = shared
        self._writer = self._connect()
        self._reader = self._connect()
        self._read_lock = threading.Lock()
        self._lock_fd: int | None = None
        try:
            if not shared:
                self._lock_fd = self._take_file()
            self._prepare_schema()
            row = self._writer.execute(
                "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM requests"
            ).fetchone()
            self._last_id, self._count = int(row[0]), int(row[1])
            self.generation = self._stored_generation()
            if not shared:
                self._writer.execute(
                    "INSERT INTO meta (key, value) VALUES ('writer_pid', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(os.getpid()),),
                )
        except (sqlite3.Error, JournalError) as exc:
            self._writer.close()
            self._reader.close()
            self._release_file()
            if isinstance(exc, JournalError):
                raise
            raise self._unreadable(exc) from exc
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ticks: dict[asyncio.AbstractEventLoop, Tick] = {}
        self._thread = threading.Thread(target=self._write_loop, name="logx-journal", daemon=True)
        self._thread.start()
        self._closing = threading.Event()
        if shared:
            threading.Thread(target=self._watch, name="logx-journal-watch", daemon=True).start()

    def _take_file(self) -> int:
        """An exclusive, non-blocking `flock` on the journal file, or a JournalError."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            row = None
            if self._has_meta():
                holder = "SELECT value FROM meta WHERE key='writer_pid'"
                row = self._writer.execute(holder).fetchone()
            pid = f" (pid {row[0]})" if row else ""
            raise JournalError(
                f"the journal {str(self.path)!r} is in use by another logx-mock serve{pid}; "
                "stop that one, or give this one its own file: --db OTHER.db (or --memory)"
            ) from None
        return fd

    def _has_meta(self) -> bool:
        found = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        return self._writer.execute(found).fetchone() is not None

    def _release_file(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _stored_generation(self) -> int:
        row = self._writer.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _watch(self) -> None:
        """Poll for commits and clears made by other processes."""
        while not self._closing.wait(0.05):
            try:
                rows = self._read(
                    "SELECT COALESCE(MAX(id), 0), "
                    "(SELECT value FROM meta WHERE key='generation') FROM requests",
                    (),
                )
            except (sqlite3.Error, JournalError):
                continue  # closing, or busy: look again
            newest, generation = int(rows[0][0]), int(rows[0][1] or 0)
            if generation != self.generation:
                self.generation = generation
                self._notify(self._last_id)
            if newest > self._last_id:
                self._committed(newest)

    def __repr__(self) -> str:
        return f"<SqliteJournal {str(self.path)!r} last_id={self._last_id}>"

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot open the journal {str(self.path)!r}: {exc}",
                cause="open",
                fix="give SqliteJournal a writable path, or use a MemoryJournal",
            ) from exc
        return conn

    def _unreadable(self, exc: sqlite3.Error) -> JournalError:
        if type(exc) is not sqlite3.DatabaseError:  # busy, I/O: may pass
            return JournalError(
                f"the journal {str(self.path)!r} cannot be read now: {exc}", cause="busy"
            )
        return JournalError(
            f"the journal {str(self.path)!r} cannot be read ({exc}): the file is damaged",
            cause="damaged",
            fix="move it away (`sqlite3 FILE .recover` may save what is in it) or open a new path",
        )

    def _prepare_schema(self) -> None:
        self._writer.executescript(_SCHEMA)
        row = self._writer.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._writer.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise JournalError(
                f"the journal {str(self.path)!r} has schema version {row[0]}, but this logx-mock "
                f"writes version {SCHEMA_VERSION}",
                cause="version",
                fix="move the file away or open a new path",
            )

    # History, asked by apply_history from the writer thread only.
    def seen(self, keys: list[DedupeKey]) -> set[DedupeKey]:
        """One query per 300 keys; EXISTS stops at the first match, so a uuid sent a
        million times costs one index seek, not a million rows."""
        normal = {(as_text(e), as_text(u), _timestamp_cell(t)): (e, u, t) for e, u, t in keys}
        found: set[DedupeKey] = set()
        wanted = list(normal)
        for start in range(0, len(wanted), 300):
            chunk = wanted[start : start + 300]
            rows = self._writer.execute(
                f"WITH k(e, u, t) AS (VALUES {', '.join(['(?, ?, ?)'] * len(chunk))}) "
                "SELECT e, u, t FROM k WHERE EXISTS (SELECT 1 FROM events WHERE uuid IS k.u "
                "AND entity_id IS k.e AND timestamp IS k.t AND verdict = 'accepted')",
                [cell for key in chunk for cell in key],
            ).fetchall()
            found.update(normal[tuple(row)] for row in rows)
        return found

    def impression_before(self, visitor_id: Any, timestamp: Any) -> bool:
        row = self._writer.execute(
            "SELECT 1 FROM events WHERE visitor_id IS ? AND kind='impression' "
            "AND verdict='accepted' AND timestamp <= ? LIMIT 1",
            (as_text(visitor_id), _timestamp_cell(timestamp)),
        ).fetchone()
        return row is not None

    def append(self, record: RequestRecord) -> Future[RequestRecord]:
        future: Future[RequestRecord] = Future()
        self._queue.put(("append", record, future))
        return future

    async def commit(self, record: RequestRecord) -> RequestRecord:
        """Join this loop tick's group: handed to the writer as one job once the tick ends."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RequestRecord] = loop.create_future()
        tick = self._ticks.get(loop)
        if tick is None:
            tick = self._ticks[loop] = []
            loop.call_soon(self._hand_over, loop)
        tick.append((record, waiter))
        return await waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(("tick", self._ticks.pop(loop), loop))

    def clear(self) -> None:
        future: Future[Any] = Future()
        self._queue.put(("clear", None, future))
        future.result()
        self.generation = self._stored_generation()
        self._notify(self._last_id)

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._writer.close()
        self._reader.close()
        self._release_file()

    def _write_loop(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while not self._queue.empty() and len(jobs) < 512:
                jobs.append(self._queue.get_nowait())
            stop = _STOP in jobs
            jobs = [job for job in jobs if job is not _STOP]
            if jobs:
                self._run_batch(jobs)
            if stop:
                return

    def _run_batch(self, jobs: list[Any]) -> None:
        try:
            self._writer.execute("BEGIN IMMEDIATE")
            pending: list[RequestRecord] = []
            for kind, item, _ in jobs:
                if kind == "append":
                    pending.append(item)
                elif kind == "tick":
                    pending.extend(record for record, _ in item)
                else:
                    self._insert(pending)
                    pending = []
                    self._clear_tables()
            self._insert(pending)
            self._evict()
            self._writer.execute("COMMIT")
        except Exception as exc:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            log.error("journal write failed, %d job(s) not recorded: %s", len(jobs), exc)
            self._count = int(self._writer.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
            self._settle(jobs, JournalError(f"the journal could not record the request: {exc}"))
            return
        self._settle(jobs, None)
        ids = [record.id for record in _records(jobs)]
        if ids:
            self._committed(max(ids))

    @staticmethod
    def _settle(jobs: list[Any], error: Exception | None) -> None:
        """Wake every waiter: a thread's future directly, a loop tick's in one callback."""
        for kind, item, target in jobs:
            if kind == "tick":
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    target.call_soon_threadsafe(_wake, item, error)
            elif error is not None:
                target.set_exception(error)
            else:
                target.set_result(item)

    def _clear_tables(self) -> None:
        self._writer.execute("DELETE FROM requests")
        self._writer.execute("DELETE FROM events")
        self._writer.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
        self._count = 0

    def _insert(self, records: list[RequestRecord]) -> None:
        """Insert `records` in order: ids, history, then one executemany per table."""
        if not records:
            return
        keys = accepted_keys(records)
        history = RecentHistory(self, known=self.seen(keys) if keys else set())
        row = self._writer.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'requests'"
        ).fetchone()
        next_id = int(row[0]) + 1 if row else 1
        request_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        for record in records:
            apply_history(record, history)  # before this batch's later records are known
            history.remember(record)
            record.id, next_id = next_id, next_id + 1
            request_rows.append(self._request_row(record))
            for event in record.events:
                event.request_id = record.id
                event_rows.append(self._event_row(event))
        self._writer.executemany(_INSERT_REQUEST, request_rows)
        self._writer.executemany(_INSERT_EVENT, event_rows)
        self._count += len(records)

    @staticmethod
    def _request_row(record: RequestRecord) -> tuple[Any, ...]:
        meta = {name: getattr(record, name) for name in _META_FIELDS}
        meta["headers"] = record.headers
        for name in ("errors", "warnings", "unknown_fields"):
            meta[name] = [v.to_dict() for v in getattr(record, name)]
        if record.raw is not None:
            body, is_json = record.raw, False
        elif record.source is not None:
            body, is_json = record.source, True
        else:
            body, is_json = json.dumps(record.payload).encode(), True
        return (record.id, record.verdict, json.dumps(meta), body, is_json)

    @staticmethod
    def _event_row(event: EventRecord) -> tuple[Any, ...]:
        cells = [as_text(getattr(event, name)) for name in _COLUMNS]
        stamp = _timestamp_cell(event.timestamp)
        return (event.request_id, event.index, *cells, stamp, event.duplicate)

    def _evict(self) -> None:
        if self.max_requests is None:
            return
        if self.shared:  # other processes insert too: count what is there
            # Ids are contiguous (AUTOINCREMENT never reuses one, a rolled-back insert takes
            # none, evictions and clears remove from the oldest end): two index look-ups
            # count the table, where COUNT(*) would read all of it on every commit.
            low, high = self._writer.execute("SELECT MIN(id), MAX(id) FROM requests").fetchone()
            self._count = 0 if low is None else high - low + 1
        if self._count <= self.max_requests:
            return
        excess = self._count - self.max_requests
        row = self._writer.execute(
            "SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?", (excess - 1,)
        ).fetchone()
        self._writer.execute("DELETE FROM requests WHERE id <= ?", (row[0],))
        self._writer.execute("DELETE FROM events WHERE request_id <= ?", (row[0],))
        self._count -= excess
        log.info(
            "journal cap %d reached: evicted the %d oldest request(s)", self.max_requests, excess
        )

    # Reading.
    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._unreadable(exc) from exc

    def _record(self, row: Any, duplicates: set[int] | None = None) -> RequestRecord:
        """A request from its row; its events are flattened again from the stored payload
        (events are not stored twice), with the duplicate flags the writer decided."""
        request_id, verdict, meta_text, body, body_is_json = row
        meta = json.loads(meta_text)
        record = RequestRecord(
            id=request_id,
            verdict=verdict,
            headers=[(k, v) for k, v in meta.pop("headers")],
            errors=[Violation.from_dict(v) for v in meta.pop("errors")],
            warnings=[Violation.from_dict(v) for v in meta.pop("warnings")],
            unknown_fields=[Violation.from_dict(v) for v in meta.pop("unknown_fields")],
            **meta,
        )
        if body_is_json and body is not None:
            record.payload = json.loads(body)
        elif body is not None:
            record.raw = bytes(body)
        if verdict in WITH_EVENTS:
            record.events = flatten(
                record.payload, verdict=verdict, received_at=record.received_at, keys=record.keys
            )
            if duplicates is None:
                duplicates = self._duplicates(request_id)
            for event in record.events:
                event.request_id = request_id
                event.duplicate = event.index in duplicates
        return record

    def _duplicates(self, request_id: int) -> set[int]:
        rows = self._read(
            "SELECT idx FROM events WHERE request_id = ? AND duplicate = 1", (request_id,)
        )
        return {row[0] for row in rows}

    def requests(
        self, *, after: int = 0, limit: int = 100, verdict: str | None = None
    ) -> list[RequestRecord]:
        sql = f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id > ?"
        params: tuple[Any, ...] = (after,)
        if verdict is not None:
            sql, params = sql + " AND verdict = ?", (*params, verdict)
        rows = self._read(sql + " ORDER BY id LIMIT ?", (*params, _limit(limit)))
        return [self._record(row) for row in rows]

    def scan(self, *, after: int = 0, until: int | None = None) -> Iterator[RequestRecord]:
        """Chunk by chunk, with one duplicate-flag query per chunk (not one per request)."""
        top = 2**63 - 1 if until is None else until
        while True:
            rows = self._read(
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id > ? AND id <= ? "
                "ORDER BY id LIMIT ?",
                (after, top, _SCAN_CHUNK),
            )
            if not rows:
                return
            flagged = self._read(
                "SELECT request_id, idx FROM events WHERE request_id > ? AND request_id <= ? "
                "AND duplicate = 1",
                (after, rows[-1][0]),
            )
            duplicates: dict[int, set[int]] = {}
            for request_id, idx in flagged:
                duplicates.setdefault(request_id, set()).add(idx)
            for row in rows:
                yield self._record(row, duplicates.get(row[0], set()))
            after = rows[-1][0]

    def repeated_uuids(self, *, after: int = 0) -> set[str] | None:
        """One pass over the (uuid, ...) index alone, whatever the verdict or `after`
        (a superset is allowed): only uuids that repeat need remembering."""
        rows = self._read(
            "SELECT uuid FROM events WHERE uuid IS NOT NULL GROUP BY uuid HAVING COUNT(*) > 1", ()
        )
        return {row[0] for row in rows}

    def request(self, request_id: int) -> RequestRecord | None:
        rows = self._read(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,))
        return self._record(rows[0]) if rows else None

    def events(self, *, after: int = 0, limit: int = 100, **filters: str) -> list[EventRecord]:
        check_filters(filters)
        where = ["request_id > ?", *(f"{name} = ?" for name in filters)]
        rows = self._read(
            f"SELECT request_id, idx, duplicate FROM events WHERE {' AND '.join(where)} "
            "ORDER BY request_id, idx LIMIT ?",
            (after, *(as_text(v) for v in filters.values()), _limit(limit)),
        )
        wanted: dict[int, dict[int, bool]] = {}
        for request_id, idx, duplicate in rows:
            wanted.setdefault(request_id, {})[idx] = bool(duplicate)
        found: list[EventRecord] = []
        for request_id, chosen in wanted.items():
            record_rows = self._read(
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,)
            )
            if not record_rows:
                continue  # evicted between the two reads
            duplicates = {idx for idx, dup in chosen.items() if dup}
            record = self._record(record_rows[0], duplicates)
            found.extend(e for e in record.events if e.index in chosen)
        return found
