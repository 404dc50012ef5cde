"""The SQLite journal's schema: created with a new file, migrated on upgrade.

A new file gets `SCHEMA` whole; a file of an older version gets the `MIGRATIONS`
from its version on, each in one transaction with the version it reaches. A file of
a version this logx-mock does not know (newer, or older than version 2) is refused.
"""

from __future__ import annotations

import sqlite3

from ..errors import JournalError

__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "prepare"]

SCHEMA_VERSION = 3
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
CREATE INDEX events_visitor ON events (visitor_id);
CREATE INDEX events_key ON events (key);
CREATE INDEX events_identity ON events (uuid, entity_id, timestamp);
"""
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
