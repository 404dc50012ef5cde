"""The SQLite journal's schema: created with a new file, migrated on upgrade.

A new file gets `SCHEMA` whole; a file of an older version gets the `MIGRATIONS`
from its version on, each in one transaction with the version it reaches. A file of
a version this logx-mock does not know (newer, or older than version 2) is refused.
"""

from __future__ import annotations

import sqlite3

from ..batch import IMPRESSION_KEY
from ..errors import JournalError
from .visitors import VISITOR_INDEX

__all__ = ["KEY_INDEXED", "MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "UNINDEXED_KEY", "prepare"]

SCHEMA_VERSION = 6
UNINDEXED_KEY = IMPRESSION_KEY
"""The key the `events_key` index leaves out: `campaign_activated`, every SDK impression's,
so most events of a journal cost no entry there. A `key` filter on it matches those
impressions, which the table's own order finds without an index."""
KEY_INDEXED = f"key IS NOT '{UNINDEXED_KEY}'"
"""The `events_key` index's condition. A query filtering on any other key says it too (a
term that changes nothing, as `key = ?` implies it), so that SQLite uses the index."""
_KEY_INDEX = f"CREATE INDEX events_key ON events (key) WHERE {KEY_INDEXED};"
SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    verdict TEXT NOT NULL,
    meta TEXT NOT NULL,
    body BLOB,
    body_is_json INTEGER NOT NULL
);
CREATE TABLE events (
    request_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    visitor_id TEXT, key TEXT, kind TEXT, entity_id TEXT, uuid TEXT, account_id TEXT,
    project_id TEXT, client_name TEXT, verdict TEXT, timestamp INTEGER,
    duplicate INTEGER NOT NULL,
    PRIMARY KEY (request_id, idx)
) WITHOUT ROWID;
CREATE INDEX events_identity ON events (uuid, entity_id, timestamp);
"""
SCHEMA += VISITOR_INDEX + _KEY_INDEX
_DATAFILES = """
CREATE TABLE datafiles (
    position INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    sdk_key TEXT NOT NULL,
    modified REAL,
    body BLOB NOT NULL
);
"""
SCHEMA += _DATAFILES
MIGRATIONS = {
    2: _DATAFILES,  # 2 -> 3: the datafiles, shared by `serve --workers` (the plan is in meta)
    3: f"DROP INDEX events_key; {_KEY_INDEX}",  # 3 -> 4: impressions leave the key index
    # 4 -> 5: no table changes; a request's meta leaves out its empty fields (rows.py
    # `EMPTY_META`), which an older logx-mock could not read, and version 4 rows read as before.
    4: "",
    # 5 -> 6: `events_visitor` led by a bucket of request ids, not the visitor (visitors.py)
    5: f"DROP INDEX events_visitor; {VISITOR_INDEX}",
}


def prepare(conn: sqlite3.Connection, shown: str) -> None:
    """Bring the file at `shown` to `SCHEMA_VERSION`, or refuse it."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        _upgrade(conn, SCHEMA, SCHEMA_VERSION)
        return
    found = int(row[0])
    if found != SCHEMA_VERSION and found not in MIGRATIONS:
        raise JournalError(
            f"the journal {shown!r} has schema version {found}, but this logx-mock "
            f"writes version {SCHEMA_VERSION}",
            cause="version",
            fix="move the file away or open a new path",
        )
    for version in range(found, SCHEMA_VERSION):
        _upgrade(conn, MIGRATIONS[version], version + 1)


def _upgrade(conn: sqlite3.Connection, script: str, reached: int) -> None:
    """Run `script` and record the version it reaches, in one transaction."""
    conn.executescript(
        f"BEGIN IMMEDIATE; {script}; INSERT INTO meta (key, value) "
        f"VALUES ('schema_version', '{reached}') "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value; COMMIT;"
    )
