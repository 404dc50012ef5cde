"""The PostgreSQL journal's schema: created on first start, migrated on upgrade.

`MIGRATIONS[n]` takes a database from version n to n + 1; a new database runs them
all. Every instance that starts runs `prepare` in one transaction under an advisory
lock, so two instances starting together migrate once, and a failed migration
leaves the database as it was (PostgreSQL's DDL is transactional). A database of a
newer version than this logx-mock is refused: an old instance must not write
beside new ones. Tables are created in the connection's current schema
(`?options=-csearch_path%3Dname` in the URL picks another), all named `logx_*`.
"""

from __future__ import annotations

import psycopg

from .base import JournalError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "prepare"]

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: requests, their events, and the one row every writer locks (see postgres.py).
    """
    CREATE TABLE logx_state (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        next_id BIGINT NOT NULL,
        count BIGINT NOT NULL,
        generation BIGINT NOT NULL
    );
    INSERT INTO logx_state (next_id, count, generation) VALUES (1, 0, 0);
    CREATE TABLE logx_requests (
        id BIGINT PRIMARY KEY,
        verdict TEXT NOT NULL,
        meta TEXT NOT NULL,
        body BYTEA,
        body_is_json BOOLEAN NOT NULL
    );
    CREATE TABLE logx_events (
        request_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        visitor_id TEXT, key TEXT, kind TEXT, entity_id TEXT, uuid TEXT, account_id TEXT,
        project_id TEXT, client_name TEXT, verdict TEXT, timestamp BIGINT,
        duplicate BOOLEAN NOT NULL,
        PRIMARY KEY (request_id, idx)
    );
    CREATE INDEX logx_events_visitor ON logx_events (visitor_id, kind, timestamp);
    CREATE INDEX logx_events_key ON logx_events (key);
    CREATE INDEX logx_events_identity ON logx_events (uuid, entity_id, timestamp);
    """,
    # 1 -> 2: the fault plan, shared by every instance (its JSON, and a version that grows
    # with every change, so a writer reads it again only when another instance changed it).
    """
    ALTER TABLE logx_state
        ADD COLUMN plan TEXT NOT NULL DEFAULT '',
        ADD COLUMN plan_version BIGINT NOT NULL DEFAULT 0;
    """,
    # 2 -> 3: the uploaded datafiles, shared by every instance, and their version.
    """
    CREATE TABLE logx_datafiles (
        position INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        sdk_key TEXT NOT NULL,
        modified DOUBLE PRECISION,
        body BYTEA NOT NULL
    );
    ALTER TABLE logx_state ADD COLUMN datafiles_version BIGINT NOT NULL DEFAULT 0;
    """,
    # 3 -> 4: no table changes; a request's meta leaves out its empty fields (rows.py
    # `EMPTY_META`), which an older logx-mock could not read, and version 3 rows read as before.
    "SELECT 1;",
)
SCHEMA_VERSION = len(MIGRATIONS)


def prepare(conn: psycopg.Connection[tuple[object, ...]], target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to version `target` (tests stop early to build an old database);
    returns the version found before."""
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('logx-mock schema ' || current_schema()))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS logx_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        row = conn.execute("SELECT value FROM logx_meta WHERE key = 'schema_version'").fetchone()
        found = int(str(row[0])) if row else 0
        if found > SCHEMA_VERSION:
            raise JournalError(
                f"the database has logx-mock schema version {found}, but this logx-mock writes "
                f"version {SCHEMA_VERSION}",
                cause="version",
                fix="upgrade logx-mock on this host, or use another database",
            )
        for version in range(found, target):
            conn.execute(MIGRATIONS[version].encode())
        conn.execute(
            "INSERT INTO logx_meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(max(found, target)),),
        )
    return found
