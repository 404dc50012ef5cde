"""The shared journal: PostgreSQL, so several logx-mock instances form one mock.

**Ordering a reader can trust.** A reader pages with `after=ID` and must never miss a
request nor see one twice while many instances write. A sequence would not do: a
transaction that took id 7 and commits late appears behind a reader that already
read 8 and moved its cursor past 7. So ids are assigned *serially, at commit*: every
write transaction starts with one statement,

    UPDATE logx_state SET next_id = next_id + n ... RETURNING ...

on the single state row. Its row lock is held until that transaction commits, so
writers, on every instance, run one at a time; each takes the ids that follow the
last committed ones, and PostgreSQL makes a commit visible before it releases its
locks. Hence the committed ids are always a prefix in id order, with no gaps (a
rolled-back writer hands its ids back): a reader that has seen id N has seen, or
will never see, every id below it. The same lock makes history exact across
instances (a duplicate sent to two instances is flagged once, as on SQLite), and
keeps `--max-requests` and `clear()` consistent for all.

A visibility horizon (readers stop at the oldest id still in flight) would let
writers overlap, but needs a table of in-flight ids every reader consults; the
lock costs one row update per group commit, and group commits are what keep it
cheap: one writer thread per instance takes every request waiting, runs them in
one transaction (history, one `executemany` per table, eviction, `pg_notify`) and
commits, and only then are their 204s sent. `synchronous_commit` is PostgreSQL's
default (on): a commit is on disk before it returns, so `kill -9` of an instance,
or of PostgreSQL, loses nothing acknowledged.

**Other instances' commits** arrive by LISTEN/NOTIFY (each commit notifies the
newest id and the reset generation), waking long-polls and the page at once; the
listener also reads the state row every second, so a lost notification costs at
most a second.

**A database that goes away** fails the batches in flight (their requests get 503
with `Retry-After`, and a log line); the writer reconnects for the next batch, reads
go through a `psycopg_pool` pool that replaces broken connections, and the listener
reconnects on its own: the instance recovers without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from ..fault_plan import PlanState
from ..model import EventRecord, RequestRecord
from .base import _SCAN_CHUNK, DEFAULT_LIMIT, EventStart, JournalError, _limit
from .datafile_rows import DatafileRow, from_rows
from .group import GroupCommitJournal, Stored
from .pg_schema import prepare
from .pg_url import shown_url
from .pg_writer import clear_tables, evict, insert, lock_state
from .rows import REQUEST_COLUMNS, record_from_row, text_cell

__all__ = ["PostgresJournal"]

log = logging.getLogger("logx_mock")

_CONNECT_TIMEOUT = 3
_STATE = "next_id - 1, generation, plan_version, datafiles_version"
"""What a notification carries, and what the listener reads once a second."""
_DATAFILE_ROWS = "SELECT source, sdk_key, modified, body FROM logx_datafiles ORDER BY position"


class PostgresJournal(GroupCommitJournal):
    """A journal in the PostgreSQL database at `url`, shared by every instance on it.

    Raises `JournalError` when the database cannot be reached or has a newer schema.
    """

    def __init__(self, url: str, *, max_requests: int | None = None, pool_size: int = 4) -> None:
        super().__init__(max_requests=max_requests)
        self.url = url
        self._closing = threading.Event()
        self._plan_followed = -1
        try:
            with self._connect() as conn:
                prepare(conn)
                schema = conn.execute("SELECT current_schema()").fetchone()
                self._refresh(conn)
        except psycopg.Error as exc:
            raise JournalError(
                f"cannot open the journal {shown_url(url)}: {_reason(exc)}",
                cause="open",
                fix="check that PostgreSQL runs there and the URL's user, password and "
                "database are right",
            ) from exc
        self._channel = f"logx_mock {schema[0] if schema else ''}"
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=_kwargs(),
            timeout=2.0,  # a read waits this long for a connection, then 503
            reconnect_timeout=2.0,  # then a new attempt starts with the next read
            check=ConnectionPool.check_connection,
            name="logx-mock",
            open=True,
        )
        self._writer: psycopg.Connection[Any] | None = None
        self._touched = False
        self._listener = threading.Thread(
            target=self._listen, name="logx-journal-listen", daemon=True
        )
        self._listener.start()
        self._start_writer()

    def __repr__(self) -> str:
        return f"<PostgresJournal {shown_url(self.url)!r} last_id={self._last_id}>"

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, **_kwargs())

    def _refresh(self, conn: psycopg.Connection[Any]) -> None:
        """Catch up with the state row: the newest committed id, the generation, the plan."""
        row = conn.execute(f"SELECT {_STATE} FROM logx_state".encode()).fetchone()
        self._caught_up(conn, *(int(cell) for cell in row or ()))

    def _caught_up(
        self, conn: psycopg.Connection[Any], newest: int, generation: int, plan: int, files: int
    ) -> None:
        """Another instance (or this one) committed up to `newest`, cleared the journal
        (`generation`), changed the plan or the datafiles (their versions): tell who
        waits for that."""
        self._datafiles_changed(files, lambda: from_rows(conn.execute(_DATAFILE_ROWS).fetchall()))
        if generation != self.generation:
            self.generation = generation
            self._notify(self._last_id)
        if newest > self._last_id:
            self._committed(newest)
        if plan != self._plan_followed:
            row = conn.execute("SELECT plan FROM logx_state").fetchone()
            if row and row[0]:
                self._plan_changed_elsewhere(PlanState.from_json(row[0]))
            self._plan_followed = plan

    # Writing ------------------------------------------------------------------

    @property
    def where(self) -> str:
        return shown_url(self.url)

    def clear(self) -> None:
        self._clear_stored()
        self._notify(self._last_id)

    def close(self) -> None:
        self._closing.set()  # the listener ends by itself within a quarter second
        self._stop_writer()
        # Wait for it: a process that exits while the thread is still inside libpq
        # (interpreter finalization under a daemon thread) can crash on the way out.
        self._listener.join(timeout=5)
        if self._writer is not None:
            self._writer.close()
        self._pool.close()

    def _write(self, jobs: list[Any]) -> None:
        """One transaction (group.py). A connection found broken by its first statement
        (PostgreSQL restarted since the last group) is replaced once: nothing had
        changed yet, neither in the database nor in the records."""
        for attempt in (1, 2):
            self._touched = False
            try:
                super()._write(jobs)
                return
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    self._drop_writer()
                    if attempt == 1 and not self._touched:
                        continue
                raise JournalError(_reason(exc)) from exc

    def _drop_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    def _conn(self) -> psycopg.Connection[Any]:
        """The writer's connection, made again after a failure."""
        if self._writer is None or self._writer.closed:
            try:
                self._writer = self._connect()
            except psycopg.Error as exc:
                raise JournalError(_reason(exc)) from exc
        return self._writer

    # One transaction (group.py drives it).
    def _begin(self) -> int:
        conn = self._conn()
        conn.execute("BEGIN")
        version = lock_state(conn)  # a stale connection fails here, harmlessly
        self._touched = True  # from here on the records change: no second attempt
        self._generation = self.generation
        return version

    def _insert(self, stored: list[Stored]) -> None:
        insert(self._conn(), stored)

    def _clear_tables(self) -> None:
        self._generation = clear_tables(self._conn())

    def _load_plan(self) -> PlanState:
        row = self._conn().execute("SELECT plan FROM logx_state").fetchone()
        return PlanState.from_json(row[0]) if row and row[0] else PlanState()

    def _save_plan(self, text: str) -> int:
        row = (
            self._conn()
            .execute(
                "UPDATE logx_state SET plan = %s, plan_version = plan_version + 1 "
                "RETURNING plan_version",
                (text,),
            )
            .fetchone()
        )
        assert row is not None
        return int(row[0])

    def _load_datafile_rows(self) -> list[DatafileRow]:
        return self._conn().execute(_DATAFILE_ROWS).fetchall()

    def _read_datafile_rows(self) -> list[DatafileRow]:
        return self._read(_DATAFILE_ROWS)

    def _save_datafile_rows(self, rows: list[DatafileRow]) -> int:
        conn = self._conn()
        conn.execute("DELETE FROM logx_datafiles")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO logx_datafiles VALUES (%s, %s, %s, %s, %s)",
                [(i, *row) for i, row in enumerate(rows)],
            )
        row = conn.execute(
            "UPDATE logx_state SET datafiles_version = datafiles_version + 1 "
            "RETURNING datafiles_version"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _end(self) -> None:
        conn = self._conn()
        evicted = 0 if self.max_requests is None else evict(conn, self.max_requests)
        conn.execute(
            f"SELECT pg_notify(%s, concat_ws(' ', {_STATE})) FROM logx_state",
            (self._channel,),
        )
        conn.execute("COMMIT")
        if evicted:
            self._evictions.evicted(evicted)
        self.generation = self._generation

    def _abort(self) -> None:
        if self._writer is not None and not self._writer.closed:
            with contextlib.suppress(psycopg.Error):
                self._writer.execute("ROLLBACK")

    # Other instances ----------------------------------------------------------

    def _listen(self) -> None:
        """Follow other instances' commits and clears: NOTIFY at once, the state row
        every second (a missed notification, a reconnection)."""
        channel = sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
        while not self._closing.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(channel)
                    self._follow(conn)
            except psycopg.Error:
                self._closing.wait(0.5)  # the database is away: look again soon
            except Exception:  # e.g. a stored datafile this version cannot read
                log.exception("following %s failed; trying again", self.where)
                self._closing.wait(1.0)

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        refreshed = 0.0
        while not self._closing.is_set():
            if time.monotonic() - refreshed >= 1.0:
                self._refresh(conn)
                refreshed = time.monotonic()
            # short: close() does not wait on it; read them all before querying again
            for note in list(conn.notifies(timeout=0.25)):
                self._caught_up(conn, *(int(part) for part in note.payload.split()))

    # Reading ------------------------------------------------------------------

    def _read(self, query: Any, params: Any = ()) -> list[Any]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise JournalError(
                f"the journal {shown_url(self.url)} cannot be read now: {_reason(exc)}",
                cause="busy",
            ) from exc

    def _records(self, rows: list[Any]) -> list[RequestRecord]:
        """Requests from their rows, with the duplicate flags of all of them in one query."""
        if not rows:
            return []
        flagged = self._read(
            "SELECT request_id, idx FROM logx_events WHERE request_id = ANY(%s) AND duplicate",
            ([row[0] for row in rows],),
        )
        duplicates: dict[int, set[int]] = {}
        for request_id, idx in flagged:
            duplicates.setdefault(request_id, set()).add(idx)
        return [record_from_row(row, duplicates.get(row[0], set())) for row in rows]

    def requests(
        self, *, after: int = 0, limit: int = DEFAULT_LIMIT, verdict: str | None = None
    ) -> list[RequestRecord]:
        where, params = "id > %s", list[Any]([after])
        if verdict is not None:
            where = where + " AND verdict = %s"
            params.append(verdict)
        rows = self._read(
            f"SELECT {REQUEST_COLUMNS} FROM logx_requests WHERE {where} "
            "ORDER BY id LIMIT %s".encode(),
            (*params, _limit(limit)),
        )
        return self._records(rows)

    def scan(self, *, after: int = 0, until: int | None = None) -> Iterator[RequestRecord]:
        """Chunk by chunk (two queries each: the rows, their duplicate flags)."""
        top = 2**63 - 1 if until is None else until
        while rows := self._read(
            f"SELECT {REQUEST_COLUMNS} FROM logx_requests WHERE id > %s AND id <= %s "
            "ORDER BY id LIMIT %s".encode(),
            (after, top, _SCAN_CHUNK),
        ):
            yield from self._records(rows)
            after = rows[-1][0]

    def repeated_uuids(self, *, after: int = 0) -> set[str] | None:
        """The uuids that repeat, from the (uuid, ...) index alone (a superset is allowed:
        every verdict, whatever `after`)."""
        rows = self._read(
            "SELECT uuid FROM logx_events WHERE uuid IS NOT NULL GROUP BY uuid HAVING count(*) > 1"
        )
        return {row[0] for row in rows}

    def request(self, request_id: int) -> RequestRecord | None:
        rows = self._read(
            f"SELECT {REQUEST_COLUMNS} FROM logx_requests WHERE id = %s".encode(), (request_id,)
        )
        found = self._records(rows)
        return found[0] if found else None

    def _select_events(
        self, start: EventStart, limit: int, tail: bool, filters: dict[str, str]
    ) -> list[EventRecord]:
        after, after_index = start
        clause = "(request_id, idx) > (%s, %s)" if after_index is not None else "request_id > %s"
        first = (after,) if after_index is None else (after, after_index)
        where = " AND ".join([clause, *(f"{name} = %s" for name in filters)])
        order = "DESC" if tail else "ASC"  # the newest `limit`, put back in arrival order
        rows = self._read(
            f"SELECT request_id, idx, duplicate FROM logx_events WHERE {where} "
            f"ORDER BY request_id {order}, idx {order} LIMIT %s".encode(),
            (*first, *(text_cell(v) for v in filters.values()), limit),
        )
        if tail:
            rows.reverse()
        wanted: dict[int, dict[int, bool]] = {}
        for request_id, idx, duplicate in rows:
            wanted.setdefault(request_id, {})[idx] = bool(duplicate)
        record_rows = self._read(
            f"SELECT {REQUEST_COLUMNS} FROM logx_requests WHERE id = ANY(%s) ORDER BY id".encode(),
            (list(wanted),),
        )
        found: list[EventRecord] = []
        for row in record_rows:  # a request evicted between the two reads is skipped
            chosen = wanted[row[0]]
            record = record_from_row(row, {idx for idx, dup in chosen.items() if dup})
            found.extend(e for e in record.events if e.index in chosen)
        return found


def _kwargs() -> dict[str, Any]:
    return {
        "autocommit": True,
        "connect_timeout": _CONNECT_TIMEOUT,
        "application_name": "logx-mock",
    }


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (libpq's messages run on with hints)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
