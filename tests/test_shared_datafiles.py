"""Uploaded datafiles live in the journal's database: every `serve --workers` worker and
every instance on one PostgreSQL checks against the same set, and follows its changes."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import requests
from helpers import DATAFILE, eventually, impression
from test_journal import _post

from mockserver import Datafile, Datafiles, Endpoint, SqliteJournal
from mockserver.journal.postgres import PostgresJournal
from mockserver.journal.sqlite_schema import SCHEMA_VERSION

CLOSE = {"Connection": "close"}  # a fresh connection each time: the kernel spreads them
JSON_CLOSE = {**CLOSE, "Content-Type": "application/json"}


def _other_project() -> bytes:
    data = json.loads(DATAFILE.read_text())
    data["projectId"], data["revision"] = "999", "7"
    return json.dumps(data).encode()


def test_an_upload_to_one_worker_is_checked_by_every_worker(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2")
    base = server.url + "/_mock/datafiles"
    assert requests.post(base, data=DATAFILE.read_bytes(), timeout=30, headers=JSON_CLOSE).ok
    assert requests.post(base, data=_other_project(), timeout=30, headers=JSON_CLOSE).ok

    def everyone_has_both() -> bool:
        return all(
            sorted(
                f["project_id"]
                for f in requests.get(base, timeout=30, headers=CLOSE).json()["datafiles"]
            )
            == ["111001", "999"]
            for _ in range(6)
        )

    assert eventually(everyone_has_both)
    assert requests.delete(base, timeout=30, headers=CLOSE).status_code == 204
    assert eventually(
        lambda: all(
            requests.get(base, timeout=30, headers=CLOSE).json() == {"datafiles": []}
            for _ in range(6)
        )
    )


def test_an_upload_on_one_instance_is_followed_by_the_other_within_a_second(
    pg_instances: list[Endpoint],
) -> None:
    one, two = pg_instances
    started = time.monotonic()
    one.change_datafiles(lambda current: current.added(Datafile.load(DATAFILE)))
    assert [f.project_id for f in one.config.datafiles.files] == ["111001"]  # at once, here
    assert eventually(lambda: len(two.config.datafiles) == 1, timeout=1.0)
    assert time.monotonic() - started < 1.0
    unknown = impression()
    unknown["visitors"][0]["snapshots"][0]["decisions"][0]["experiment_id"] = "404404"
    warned = _post(two, unknown)
    assert "unknown_experiment" in {w.rule for w in warned.warnings}


def test_uploads_on_two_instances_at_once_are_both_kept(pg_instances: list[Endpoint]) -> None:
    import threading

    files = [Datafile.load(DATAFILE), Datafile.from_json(_other_project(), source="other")]
    uploads = [
        threading.Thread(target=e.change_datafiles, args=(lambda cur, f=f: cur.added(f),))
        for e, f in zip(pg_instances, files, strict=True)
    ]
    for upload in uploads:
        upload.start()
    for upload in uploads:
        upload.join()
    for endpoint in pg_instances:
        assert eventually(lambda e=endpoint: len(e.config.datafiles) == 2)
        assert sorted(f.project_id for f in endpoint.config.datafiles.files) == ["111001", "999"]


def test_a_new_instance_starts_from_the_stored_datafiles(pg_url: str) -> None:
    first = Endpoint(PostgresJournal(pg_url))
    first.use_datafiles(Datafiles((Datafile.load(DATAFILE),)))
    first.journal.close()
    later = PostgresJournal(pg_url)
    try:
        (kept,) = Endpoint(later).config.datafiles.files
        given = Datafile.load(DATAFILE)
        assert (kept.project_id, kept.sdk_key, kept.text, kept.modified) == (
            "111001",
            given.sdk_key,
            DATAFILE.read_bytes(),
            given.modified,
        )
    finally:
        later.close()


def test_a_version_2_sqlite_file_is_migrated_keeping_its_requests(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    old = _post(Endpoint(journal), impression("from-v2")).id
    journal.close()
    with sqlite3.connect(path) as conn:  # as logx-mock wrote it before the shared datafiles
        conn.execute("DROP TABLE datafiles")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    reopened = SqliteJournal(path)
    try:
        assert [r.id for r in reopened.requests()] == [old]
        Endpoint(reopened).use_datafiles(Datafiles((Datafile.load(DATAFILE),)))
        assert len(reopened.stored_datafiles()) == 1
    finally:
        reopened.close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == (str(SCHEMA_VERSION),) == ("6",)


def test_serve_on_sqlite_starts_with_the_datafiles_its_command_line_gives(
    serve: Any, tmp_path: Path
) -> None:
    db = str(tmp_path / "j.db")
    first = serve("--db", db)
    base = first.url + "/_mock/datafiles"
    uploaded = requests.post(base, data=DATAFILE.read_bytes(), timeout=30, headers=JSON_CLOSE)
    assert uploaded.status_code == 201
    first.stop()
    again = serve("--db", db)
    assert requests.get(again.url + "/_mock/datafiles", timeout=30).json() == {"datafiles": []}


def test_news_of_an_older_datafiles_version_after_a_newer_one_is_not_followed(
    tmp_path: Path,
) -> None:
    # The writer tells the followers of its own change after its commit; a watcher tells
    # of another process's. A watcher that read version 1 (say, a reset) and is slow must
    # not undo the upload the writer told as version 2: the server would check nothing.
    journal = SqliteJournal(tmp_path / "j.db")
    told: list[Datafiles] = []
    journal.follow_datafiles(told.append)
    uploaded = Datafiles((Datafile.from_json(DATAFILE.read_bytes()),))
    journal._datafiles_changed(2, uploaded)
    journal._datafiles_changed(1, Datafiles())  # the stale news, arriving last
    journal._datafiles_changed(2, Datafiles())  # and the same version twice
    assert told == [uploaded]
    journal.close()
