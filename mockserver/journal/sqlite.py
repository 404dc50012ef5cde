"""The durable journal: one SQLite file, written by one thread with group commits.

Every write goes through a queue to a single writer thread (`group.py`): it inserts
the requests waiting with a few multi-row INSERTs per table in one transaction and
commits, and only then wakes their waiters: so a 204 always means committed, and
concurrent requests share one commit.

WAL mode lets readers run beside the writer. `synchronous=NORMAL` in WAL mode:
a commit is in the WAL file (written, not yet fsynced) before its waiters wake,
so a killed process (`kill -9`) loses nothing acknowledged and the file stays
consistent; a power loss or an OS crash can lose the commits since the last
checkpoint's fsync (the file still opens, consistent, without them). Checkpoints run in a
thread of their own (checkpoints.py); the writers of a journal shared by `serve --workers`
take turns through a lock file (writer_lock.py).
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..contract.history import DedupeKey, RecentHistory, accepted_keys, apply_history
from ..fault_plan import PlanState
from ..model import EventRecord, RequestRecord
from .base import _SCAN_CHUNK, DEFAULT_LIMIT, EventStart, JournalError, _limit, as_text
from .checkpoints import Checkpointer, Duty
from .datafile_rows import DatafileRow
from .group import GroupCommitJournal, Stored
from .identities import Identities, identity_hashes
from .rows import (
    EVENT_COLUMNS,
    REQUEST_COLUMNS,
    event_rows,
    meta_text,
    record_from_row,
    timestamp_cell,
)
from .sqlite_schema import KEY_INDEXED, SCHEMA_VERSION, UNINDEXED_KEY, prepare
from .visitors import BUCKET, ImpressionVisitors, chunk_buckets, walk_visitor
from .writer_lock import turns

__all__ = ["SCHEMA_VERSION", "SqliteJournal"]  # SCHEMA_VERSION: sqlite_schema's


_INSERT_EVENTS = (
    "INSERT OR ROLLBACK INTO events "
    f"(request_id, idx, {', '.join(EVENT_COLUMNS)}, timestamp, duplicate)",
    len(EVENT_COLUMNS) + 4,
)
_INSERT_REQUESTS = (f"INSERT OR ROLLBACK INTO requests ({REQUEST_COLUMNS})", 5)
"""OR ROLLBACK: a row refused (a constraint) rolls the whole transaction back, as the writer
does anyway (group.py fails every request of it). With the default (ABORT) SQLite would undo
only the statement, so it keeps a statement journal: a copy of every page a many-row INSERT
changes, spilled to a temporary file past 64 KB. With SDKs' random uuids every event changes
a page of its own in the uuid index: a batch of ten's transaction wrote as many pages again to
temporary files (strace, in process: 167k -> 98k pwrite calls for 16,000 such requests)."""
_INT64 = 2**63
_VISITOR, _KIND, _STAMP = (
    2 + EVENT_COLUMNS.index("visitor_id"),
    2 + EVENT_COLUMNS.index("kind"),
    2 + len(EVENT_COLUMNS),
)
"""Where an event row (`rows.event_rows`) holds its visitor, kind and timestamp."""
_DROP_IDENTITY_INDEX = "DROP INDEX IF EXISTS events_identity"
"""The uuid index a new file gets (the schema's, and a shared file's writers made it until
session 9): every process that writes the file holds the identities in memory instead
(identities.py), so its first insert drops it."""
_ACCEPTED_IDENTITIES = (
    "SELECT request_id, entity_id, uuid, timestamp FROM events WHERE verdict = 'accepted'"
)
"""The accepted events' identities `Identities` holds, read when the writer first needs them
(in id order, so the newest request holding each comes last) and, in a shared file, those
other processes inserted since (`_catch_up`)."""
_IMPRESSION_VISITORS = (
    "SELECT visitor_id, request_id, timestamp FROM events "
    "WHERE kind = 'impression' AND verdict = 'accepted'"
)
"""The visitors `ImpressionVisitors` holds, read with the identities (and caught up alike),
in request-id order."""
_EARLY_CHECK = "visitor_id IS ? AND kind = 'impression' AND verdict = 'accepted' AND timestamp <= ?"
"""An accepted impression of the visitor at or before the time (`impression_before`)."""
_EVENT_ID_RANGE = (
    "SELECT (SELECT MIN(request_id) FROM events), (SELECT MAX(request_id) FROM events)"
)
"""The ids a visitor's events may have (two subqueries, as `ID_RANGE`)."""
_TRIM_EVERY = 32
"""A shared file's writer looks for the requests other processes evicted or cleared (the
oldest id left) every this many transactions, and lets their identities go."""
_ROWS_PER_INSERT = (64, 32, 16, 8, 4, 2, 1)
"""How many rows one INSERT statement takes: a statement of many rows (one step in SQLite)
costs less than `executemany` of as many (a step, a reset and the bindings' checks per
row: 14 % of the writer's instructions for a batch of ten); the largest, 64 x 13
parameters, keeps under 999, the oldest SQLite's limit. Fixed sizes: a few statements
to prepare and cache, not one per row count."""
_DATAFILE_ROWS = "SELECT source, sdk_key, modified, body FROM datafiles ORDER BY position"
ID_RANGE = "SELECT (SELECT MIN(id) FROM requests), (SELECT MAX(id) FROM requests)"
"""Two subqueries: SQLite answers a lone MIN or MAX from the index, but `SELECT MIN(id),
MAX(id)` scans the whole table (on every commit of `serve --workers`, 4x slower at 20,000
requests)."""


class SqliteJournal(GroupCommitJournal):
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
        self._alone = not shared
        """No other process writes the file: this writer may remember the ids it gave and the
        plan's version (`_next_id`, `_begin`). Not so once `leave_checkpoints` hands the file
        to `serve --workers`' workers, though this journal still holds it."""
        self._last_given: int | None = None
        """The last id this writer gave while alone (`_next_id`); None until it gives one."""
        self._oldest_seen = 1
        """A lower bound of the oldest id stored (a shared file's count, `_shared_count`)."""
        self._identities: Identities | None = None
        """The accepted events' identities, for the history look-ups (`seen`): read when the
        file opens if this process alone writes it, else by the first transaction that
        inserts (a process that only reads a shared file, `logx-mock export --db`, or only
        changes its fault plan, `serve --workers`' parent, reads none)."""
        self._visitors: ImpressionVisitors | None = None
        """The visitors with accepted impressions (a superset), for `impression_before`:
        read and caught up with the identities."""
        self._gone_through = 0
        """The requests through this id are gone once the transaction under way commits
        (its evictions, or other processes' seen in it): `_visitors` lets their chunks go
        then, not before (a rollback would bring them back)."""
        self._behind = True
        """Whether the transaction under way has yet to catch up (`_catch_up`)."""
        self._caught_up = 0
        """A shared file: the id through which this writer holds the other processes'
        identities (`_catch_up`), as of the transaction under way..."""
        self._caught_up_before = 0
        """...and as of the last committed one (what a rollback goes back to)."""
        self._transactions = 0
        self._lock_fd: int | None = None
        self._turn, checkpoint_turn = turns(self.path, shared)
        """Taken around each write transaction: the writer's handle on the writers' turn."""
        try:
            if not shared:
                self._lock_fd = self._take_file()
            self._prepare_schema()
            self._prepare_identities()
            row = self._writer.execute(
                "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM requests"
            ).fetchone()
            self._last_id, self._count = int(row[0]), int(row[1])
            self.generation = self._stored_generation()
            row = self._writer.execute(
                "SELECT value FROM meta WHERE key='datafiles_version'"
            ).fetchone()
            self._datafiles_seen = int(row[0]) if row else 0
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
        # Checkpoints in their own thread, never inside a commit, and in one of the processes
        # sharing the file (checkpoints.py).
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        duty = Duty(self.path) if shared else None
        self._checkpoints = Checkpointer(self._connect(), checkpoint_turn, duty)
        self._start_writer()
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        if shared:
            self._watcher = threading.Thread(
                target=self._watch, name="logx-journal-watch", daemon=True
            )
            self._watcher.start()

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
        """Poll for commits, clears and plan changes made by other processes."""
        plan_seen = -1
        while not self._closing.wait(0.05):
            try:
                rows = self._read(
                    "SELECT COALESCE(MAX(id), 0), "
                    "(SELECT value FROM meta WHERE key='generation'), "
                    "(SELECT value FROM meta WHERE key='plan_version'), "
                    "(SELECT value FROM meta WHERE key='datafiles_version') FROM requests",
                    (),
                )
                newest, generation, plan, datafiles = (int(cell or 0) for cell in rows[0])
                self._datafiles_changed(datafiles, self.stored_datafiles)
                if plan != plan_seen:
                    plan_seen = plan
                    stored = self._read("SELECT value FROM meta WHERE key='plan'", ())
                    if stored:
                        self._plan_changed_elsewhere(PlanState.from_json(stored[0][0]))
            except (sqlite3.Error, JournalError):
                continue  # closing, or busy: look again
            if generation != self.generation:
                self.generation = generation
                self._notify(self._last_id)
            if newest > self._last_id:
                self._committed(newest)

    def __repr__(self) -> str:
        return f"<SqliteJournal {str(self.path)!r} last_id={self._last_id}>"

    def _connect(self) -> sqlite3.Connection:
        folder = self.path.parent
        if not folder.is_dir():
            raise JournalError(
                f"cannot create the journal {str(self.path)!r}: the folder {str(folder)!r} does "
                "not exist",
                cause="folder",
                fix="create it, or give a path in an existing folder",
            )
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
        prepare(self._writer, str(self.path))

    def _prepare_identities(self) -> None:
        """A file this process alone writes: drop the uuid index (each event's entry cost a
        page of its own in every commit, see identities.py) and read the identities into
        memory. A shared file's writer does both in its first transaction (`_catch_up`)."""
        if self.shared:
            return
        self._writer.execute(_DROP_IDENTITY_INDEX)
        self._load_identities()

    def _load_identities(self) -> None:
        rows = self._writer.execute(f"{_ACCEPTED_IDENTITIES} ORDER BY request_id, idx")
        if self._identities is None:
            self._identities = Identities()
        self._identities.load(rows)
        self._visitors = ImpressionVisitors()
        self._visitors.load(self._writer.execute(f"{_IMPRESSION_VISITORS} ORDER BY request_id"))

    def _catch_up(self) -> None:
        """A file other processes write too, in a transaction holding its write lock, before
        its first insert: hold the identities of the accepted events other processes inserted
        since this writer last looked (the first time, all of them, and drop the uuid index),
        and, every `_TRIM_EVERY` such transactions, let go of those of the requests they
        evicted or cleared."""
        self._behind = False
        identities = self._identities
        if identities is None:
            self._writer.execute(_DROP_IDENTITY_INDEX)
            self._load_identities()
        else:
            rows = self._writer.execute(
                f"{_ACCEPTED_IDENTITIES} AND request_id > ? ORDER BY request_id, idx",
                (self._caught_up,),
            ).fetchall()
            identities.add_many(
                [row[0] for row in rows], identity_hashes([row[1:] for row in rows])
            )
            if self._visitors is not None:
                self._visitors.load(
                    self._writer.execute(
                        f"{_IMPRESSION_VISITORS} AND request_id > ? ORDER BY request_id",
                        (self._caught_up,),
                    )
                )
        high = self._writer.execute("SELECT MAX(id) FROM requests").fetchone()[0]
        if high is not None:
            self._caught_up = max(self._caught_up, int(high))
        self._transactions += 1
        if identities is not None and self._transactions % _TRIM_EVERY == 0:
            low = self._writer.execute("SELECT MIN(id) FROM requests").fetchone()[0]
            through = self._caught_up if low is None else int(low) - 1
            identities.trim(through)
            self._gone_through = max(self._gone_through, through)

    # History, asked by apply_history from the writer thread only.
    def seen(self, keys: list[DedupeKey]) -> set[DedupeKey]:
        """The keys that accepted events stored hold (asked inside `_insert`, which has the
        identities read and caught up): looked up in memory, a hit confirmed in its request's
        rows."""
        cells = [_cells(key) for key in keys]
        return self._seen(keys, cells, identity_hashes(cells))

    def _seen(
        self, keys: list[DedupeKey], cells: list[DedupeKey], hashes: list[int]
    ) -> set[DedupeKey]:
        """`seen`, given the keys' cells (`_cells`) and their hashes (`identity_hashes`)."""
        identities = self._identities
        assert identities is not None
        found: set[DedupeKey] = set()
        holders = identities.holders(hashes)
        if holders.count(None) == len(holders):
            return found  # the usual case: no key held
        for key, holder, (e, u, t) in zip(keys, holders, cells, strict=True):
            if holder is None:
                continue
            # rare: a duplicate (or a shared hash)
            row = self._writer.execute(
                "SELECT 1 FROM events WHERE request_id = ? AND entity_id IS ? AND uuid IS ? "
                "AND timestamp IS ? AND verdict = 'accepted' LIMIT 1",
                (holder, e, u, t),
            ).fetchone()
            if row is not None:
                found.add(key)
        return found

    def impression_before(self, visitor_id: Any, timestamp: Any) -> bool:
        """From memory when no chunk of the file may hold an accepted impression of the
        visitor; else from the request of its last one held in memory; else the chunks that
        may hold one, newest first, until one does (visitors.py)."""
        visitor, stamp = as_text(visitor_id), timestamp_cell(timestamp)
        if stamp is None:
            return False  # `timestamp <= NULL` holds for no row
        held = self._visitors  # read with the identities, before any history look-up
        assert held is not None
        chunks = held.chunks(visitor)
        if not chunks:
            return False
        last = held.last(visitor)
        if (
            last is not None
            and self._writer.execute(
                f"SELECT 1 FROM events WHERE request_id = ? AND {_EARLY_CHECK} LIMIT 1",
                (last[0], visitor, stamp),
            ).fetchone()
        ):
            return True
        for chunk in chunks:
            buckets = chunk_buckets(chunk)
            marks = ", ".join("?" * len(buckets))
            if self._writer.execute(
                f"SELECT 1 FROM events INDEXED BY events_visitor WHERE {BUCKET} IN ({marks}) "
                f"AND {_EARLY_CHECK} LIMIT 1",
                (*buckets, visitor, stamp),
            ).fetchone():
                return True
        return False

    def clear(self) -> None:
        self._clear_stored()
        self.generation = self._stored_generation()
        self._notify(self._last_id)

    def leave_checkpoints(self) -> None:
        """Stop checkpointing the file: the processes sharing it do (`serve --workers`' parent
        holds the file while its workers write it; one of them checkpoints)."""
        self._checkpoints.close()
        self._alone = False  # its workers write it: ask the file for ids and the plan again
        self._identities = None  # nor hold its identities (its transactions insert none)

    def close(self) -> None:
        self._closing.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            # Its read may be running: the reader must not be closed under it (the likely
            # cause of a SIGSEGV once seen in test_writer_lock, in a whole-suite run).
            self._watcher.join()
        self._stop_writer()
        self._checkpoints.close()
        self._writer.close()
        with self._read_lock:  # a reader in another thread finishes its read first
            self._reader.close()
        self._release_file()
        self._turn.close()

    @property
    def where(self) -> str:
        return str(self.path)

    # One transaction (group.py drives it).
    def _take_turn(self) -> None:
        self._turn.acquire()  # let go by _end or _abort (group.py calls one of them)

    def _leave_turn(self) -> None:
        self._turn.release()

    def _begin(self) -> int:
        self._take_turn()  # the write loop took it already; this makes sure
        self._caught_up_before = self._caught_up  # what a rollback goes back to
        self._behind = True
        self._writer.execute("BEGIN IMMEDIATE")
        if self._alone and self._plan is not None:
            # No other process writes the file: the plan's version is the one this writer
            # last read or wrote (a statement fewer in every commit).
            return self._plan[0]
        row = self._writer.execute("SELECT value FROM meta WHERE key='plan_version'").fetchone()
        return int(row[0]) if row else 0

    def _load_plan(self) -> PlanState:
        row = self._writer.execute("SELECT value FROM meta WHERE key='plan'").fetchone()
        return PlanState.from_json(row[0]) if row else PlanState()

    def _save_plan(self, text: str) -> int:
        self._writer.execute(
            "INSERT INTO meta (key, value) VALUES ('plan', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (text,),
        )
        row = self._writer.execute(
            "INSERT INTO meta (key, value) VALUES ('plan_version', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def _load_datafile_rows(self) -> list[DatafileRow]:
        return self._writer.execute(_DATAFILE_ROWS).fetchall()

    def _read_datafile_rows(self) -> list[DatafileRow]:
        return self._read(_DATAFILE_ROWS, ())

    def _save_datafile_rows(self, rows: list[DatafileRow]) -> int:
        self._writer.execute("DELETE FROM datafiles")
        self._writer.executemany(
            "INSERT INTO datafiles (source, sdk_key, modified, body) VALUES (?, ?, ?, ?)", rows
        )
        row = self._writer.execute(
            "INSERT INTO meta (key, value) VALUES ('datafiles_version', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def _end(self) -> None:
        evicted = self._evict()
        self._writer.execute("COMMIT")
        if evicted:
            self._evictions.evicted(evicted)
        self._leave_turn()
        if self._identities is not None:
            self._identities.commit()
        if self._gone_through:
            if self._visitors is not None:
                self._visitors.trim(self._gone_through)
            self._gone_through = 0

    def _abort(self) -> None:
        self._last_given = None  # the ids given in this transaction were not kept
        self._gone_through = 0  # nor its evictions
        self._caught_up = self._caught_up_before  # nor the identities found in it
        if not self._alone and self._caught_up == 0:
            self._identities = None  # read in it: read them again (the index came back)
        try:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
        finally:
            self._leave_turn()
        self._count = int(self._writer.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
        if self._identities is not None and not self._identities.abort():
            if not self._alone:  # it had cleared them: read what the table kept
                self._identities, self._caught_up = None, 0  # (in the next transaction)
            else:
                self._load_identities()

    def _clear_tables(self) -> None:
        self._writer.execute("DELETE FROM requests")
        self._writer.execute("DELETE FROM events")
        if self._identities is not None:
            self._identities.clear()
        self._writer.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
        self._count = 0

    def _insert(self, stored: list[Stored]) -> None:
        """Insert in order: ids, history, then the rows of each table."""
        if not stored:
            return
        if not self._alone and self._behind:
            self._catch_up()
        records = [record for record, _ in stored]
        keys = accepted_keys(records)
        cells = [_cells(key) for key in keys]
        hashes = identity_hashes(cells)
        known = self._seen(keys, cells, hashes) if keys else set()
        linked = _linked(records, keys)
        # None: the table holds none of the keys, and no record's history needs an earlier
        # one's: `apply_history` would warn of nothing, for any of them.
        history = RecentHistory(self, known=known) if known or linked else None
        next_id = self._next_id()
        request_rows: list[tuple[Any, ...]] = []
        new_events: list[tuple[Any, ...]] = []
        accepted: list[tuple[Any, ...]] = []  # the rows of `keys`' events, in their order
        last = stored[-1][0]
        for record, (body, is_json) in stored:
            if history is not None:
                apply_history(record, history)  # before this batch's later records are known
                if linked and record is not last:  # the last one's no later record asks about
                    history.remember(record)
            record.set_id(next_id)
            next_id += 1
            json_cell = 1 if is_json else 0  # not a bool: see `rows.event_rows`
            request_rows.append((record.id, record.verdict, meta_text(record), body, json_cell))
            rows = event_rows(record)
            new_events += rows
            if record.verdict == "accepted":
                accepted += rows
        self._insert_rows(_INSERT_REQUESTS, request_rows)
        self._insert_rows(_INSERT_EVENTS, new_events)
        if self._identities is not None and accepted:
            assert len(accepted) == len(hashes)
            self._identities.add_many([row[0] for row in accepted], hashes)
            if self._visitors is not None:
                self._visitors.add(
                    [
                        (row[_VISITOR], row[0], row[_STAMP])
                        for row in accepted
                        if row[_KIND] == "impression"
                    ]
                )
        self._count += len(records)
        if self._alone:
            self._last_given = next_id - 1
        else:
            self._caught_up = next_id - 1  # every id below came before: caught up

    def _next_id(self) -> int:
        """The id the next request inserted gets (AUTOINCREMENT's: never one given before,
        even to a request deleted since). A writer alone on its file remembers the last it
        gave; otherwise it asks, as other processes insert too."""
        if self._alone and self._last_given is not None:
            return self._last_given + 1
        row = self._writer.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'requests'"
        ).fetchone()
        return int(row[0]) + 1 if row else 1

    def _insert_rows(self, into: tuple[str, int], rows: list[tuple[Any, ...]]) -> None:
        """`rows` inserted by `into` (the statement's head, and the cells per row), as
        many at a time as `_ROWS_PER_INSERT` allows."""
        start = 0
        for size in _ROWS_PER_INSERT:
            while len(rows) - start >= size:
                chunk = rows[start : start + size]
                cells = [cell for row in chunk for cell in row]
                self._writer.execute(_insert_sql(*into, size), cells)
                start += size

    def _evict(self) -> int:
        """Delete the oldest requests past the cap; returns how many."""
        if self.max_requests is None:
            return 0
        if self.shared:  # other processes insert too: count what is there
            self._count = self._shared_count()
        if self._count <= self.max_requests:
            return 0
        excess = self._count - self.max_requests
        row = self._writer.execute(
            "SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?", (excess - 1,)
        ).fetchone()
        if self._identities is not None:  # what the evicted events held goes with them
            self._identities.trim(int(row[0]))
        self._gone_through = max(self._gone_through, int(row[0]))
        self._writer.execute("DELETE FROM requests WHERE id <= ?", (row[0],))
        self._writer.execute("DELETE FROM events WHERE request_id <= ?", (row[0],))
        self._count -= excess
        return excess

    def _shared_count(self) -> int:
        """How many requests the shared file holds; or, while that is within the cap, an
        upper bound of it.

        Ids are contiguous (AUTOINCREMENT never reuses one, a rolled-back insert takes none,
        evictions and clears remove from the oldest end), so the table holds MAX(id) - MIN(id)
        + 1: two index look-ups, where COUNT(*) would read all of it on every commit. MIN(id)
        only grows, so the oldest id last seen stays a lower bound of it: while that bound puts
        the count within the cap, MAX(id) alone (the right edge, which this transaction has
        just written) is read. The left edge is read only near the cap: another process's
        commit drops it from this connection's cache, and reading it again took 8 µs a commit
        where MAX(id) takes 2.5."""
        assert self.max_requests is not None
        if self._count < self.max_requests:  # at the cap, every commit evicts: count exactly
            high = self._writer.execute("SELECT MAX(id) FROM requests").fetchone()[0]
            if high is None:
                return 0
            if high - self._oldest_seen + 1 <= self.max_requests:
                return int(high) - self._oldest_seen + 1
        low, high = self._writer.execute(ID_RANGE).fetchone()
        if low is None:
            return 0
        self._oldest_seen = int(low)
        return int(high) - int(low) + 1

    # Reading.
    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._unreadable(exc) from exc

    def _record(self, row: Any, duplicates: set[int] | None = None) -> RequestRecord:
        """A request from its row, with the duplicate flags the writer decided."""
        if duplicates is None:
            duplicates = self._duplicates(row[0])
        return record_from_row(row, duplicates)

    def _duplicates(self, request_id: int) -> set[int]:
        rows = self._read(
            "SELECT idx FROM events WHERE request_id = ? AND duplicate = 1", (request_id,)
        )
        return {row[0] for row in rows}

    def requests(
        self, *, after: int = 0, limit: int = DEFAULT_LIMIT, verdict: str | None = None
    ) -> list[RequestRecord]:
        sql = f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id > ?"
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
                f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id > ? AND id <= ? "
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
        """One pass over the uuids, whatever the verdict or `after` (a superset is allowed):
        only uuids that repeat need remembering. The file has no uuid index (identities.py):
        SQLite sorts the uuids."""
        rows = self._read(
            "SELECT uuid FROM events WHERE uuid IS NOT NULL GROUP BY uuid HAVING COUNT(*) > 1", ()
        )
        return {row[0] for row in rows}

    def request(self, request_id: int) -> RequestRecord | None:
        rows = self._read(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,))
        return self._record(rows[0]) if rows else None

    def _select_events(
        self, start: EventStart, limit: int, tail: bool, filters: dict[str, str]
    ) -> list[EventRecord]:
        if "visitor_id" in filters:
            rows = self._visitor_events(start, limit, tail, filters)
        else:
            rows = self._read(*event_query(start, limit, tail, filters))
        if tail:
            rows.reverse()
        wanted: dict[int, dict[int, bool]] = {}
        for request_id, idx, duplicate in rows:
            wanted.setdefault(request_id, {})[idx] = bool(duplicate)
        found: list[EventRecord] = []
        for request_id, chosen in wanted.items():
            record_rows = self._read(
                f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,)
            )
            if not record_rows:
                continue  # evicted between the two reads
            duplicates = {idx for idx, dup in chosen.items() if dup}
            record = self._record(record_rows[0], duplicates)
            found.extend(e for e in record.events if e.index in chosen)
        return found

    def _visitor_events(
        self, start: EventStart, limit: int, tail: bool, filters: dict[str, str]
    ) -> list[Any]:
        """`event_query`'s rows for a filter on the visitor, bucket by bucket (visitors.py):
        the first `limit` from `start`, or with `tail` the newest."""
        low, high = self._read(_EVENT_ID_RANGE, ())[0]
        if low is None:
            return []
        after, after_index = start
        first = int(after) if after_index is not None else int(after) + 1  # a float too
        low = max(int(low), first)
        if low > high:
            return []
        where, params = _event_where(start, filters)
        return walk_visitor(
            self._read,
            f"SELECT {_EVENT_CELLS}",
            where,
            params,
            (low, int(high)),
            limit=limit,
            newest_first=tail,
            order=_order(tail),
        )


def _cells(key: DedupeKey) -> DedupeKey:
    """A history key as the events table holds it: most keys are their cells already (ASCII
    ids, an int64 timestamp), and are given back as they are."""
    e, u, t = key
    if (
        e.__class__ is str
        and u.__class__ is str
        and t.__class__ is int
        and e.isascii()
        and u.isascii()
        and -_INT64 < t < _INT64
    ):
        return key
    return (as_text(e), as_text(u), timestamp_cell(t))


@functools.cache
def _insert_sql(head: str, width: int, count: int) -> str:
    """`head` VALUES with `count` rows of `width` parameters."""
    row = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([row] * count)}"


def _linked(records: list[RequestRecord], keys: list[DedupeKey]) -> bool:
    """Whether a record's history may need the records before it in its group commit (not in
    the table yet): when a key (`keys`: the accepted ones) comes twice, or an accepted
    event is a conversion (it asks for its visitor's impressions). Mostly neither: then
    the table's answers (`seen` of all the keys, asked once) are all its history."""
    if len(set(keys)) < len(keys):
        return True
    for record in records:
        if record.verdict == "accepted":
            for cells in record.event_cells():
                if cells[0] == "conversion":
                    return True
    return False


def event_query(
    start: EventStart, limit: int, tail: bool, filters: dict[str, str]
) -> tuple[str, tuple[Any, ...]]:
    """The query (and its parameters) for the (request_id, idx, duplicate) of the events
    matching `filters` from `start`: the first `limit`, or with `tail` the newest."""
    where, params = _event_where(start, filters)
    sql = f"SELECT {_EVENT_CELLS} FROM events WHERE {where} ORDER BY {_order(tail)} LIMIT ?"
    return sql, (*params, limit)


_EVENT_CELLS = "request_id, idx, duplicate"


def _event_where(start: EventStart, filters: dict[str, str]) -> tuple[str, tuple[Any, ...]]:
    """The condition (and its parameters) of the events matching `filters` from `start`."""
    after, after_index = start
    clause = "(request_id, idx) > (?, ?)" if after_index is not None else "request_id > ?"
    first = (after,) if after_index is None else (after, after_index)
    where = [clause, *(f"{name} = ?" for name in filters)]
    values = tuple(as_text(v) for v in filters.values())
    if "key" in filters and as_text(filters["key"]) != UNINDEXED_KEY:
        where.append(KEY_INDEXED)  # so SQLite may use the (partial) `events_key` index
    return " AND ".join(where), (*first, *values)


def _order(tail: bool) -> str:
    """Arrival order, or with `tail` backwards: the newest `limit`, put back in order."""
    order = "DESC" if tail else "ASC"
    return f"request_id {order}, idx {order}"
