"""The PostgreSQL journal: ordering under concurrent writers, several instances on one
database, its schema, and a database that goes away and comes back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import conversion, events_request, impression
from test_journal import _post

from contract_tests.pgserver import PostgresServer
from mockserver import Endpoint, JournalError, MemoryJournal
from mockserver.journal.opening import is_postgres_url
from mockserver.journal.pg_schema import SCHEMA_VERSION, prepare
from mockserver.journal.pg_url import shown_url
from mockserver.journal.postgres import PostgresJournal
from mockserver.journal.rows import body_cells, event_row, meta_text

WRITER = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, sys.argv[5])
    from helpers import impression
    from mockserver import CoreRequest, Endpoint
    from mockserver.journal.postgres import PostgresJournal

    url, name, threads, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    journal = PostgresJournal(url)
    endpoint = Endpoint(journal)

    def work(t):
        for i in range(per):
            body = json.dumps(impression(f"{name}-{t}-{i}")).encode()
            request = CoreRequest("POST", "/v1/events", body,
                                  headers=[("content-type", "application/json")])
            assert endpoint.handle(request).status == 204

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    journal.close()
    """
)


@pytest.fixture
def journals(pg_url: str) -> Iterator[list[PostgresJournal]]:
    """Two instances' journals on one database (append more to the list to close them)."""
    opened = [PostgresJournal(pg_url), PostgresJournal(pg_url)]
    yield opened
    for journal in opened:
        journal.close()


def test_a_reader_paging_under_concurrent_writers_never_misses_nor_repeats(
    pg_url: str,
) -> None:
    """Four processes, four threads each, write while a reader pages with after=ID:
    it must see every id exactly once, in order, and the ids have no gap."""
    processes, threads, per = 4, 4, 60
    total = processes * threads * per
    tests = str(Path(__file__).parent)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_url, f"p{n}", str(threads), str(per), tests]
        )
        for n in range(processes)
    ]
    reader = PostgresJournal(pg_url)
    seen: list[int] = []
    try:
        cursor, writing = 0, True
        while writing:
            writing = any(w.poll() is None for w in writers)  # then one last pass
            while page := reader.requests(after=cursor, limit=37):
                seen += [r.id for r in page]
                cursor = page[-1].id
        assert [w.returncode for w in writers] == [0] * processes
    finally:
        for writer in writers:
            writer.kill()
        reader.close()
    assert seen == list(range(1, total + 1))


def test_events_paging_under_concurrent_writers_never_misses_nor_repeats(
    journals: list[PostgresJournal],
) -> None:
    """Two instances, eight threads each; the events cursor (after=request id) is exact."""
    first, second = journals
    per_thread, threads = 40, 8
    total = 2 * threads * per_thread

    def write(journal: PostgresJournal, n: int) -> None:
        endpoint = Endpoint(journal)
        for i in range(per_thread):
            _post(endpoint, impression(f"v{n}-{i}"))

    workers = [
        threading.Thread(target=write, args=(journals[n % 2], n)) for n in range(2 * threads)
    ]
    for worker in workers:
        worker.start()
    visitors: list[str] = []
    cursor, deadline = 0, time.monotonic() + 120
    while len(visitors) < total and time.monotonic() < deadline:
        page = second.events(after=cursor, limit=29)  # one event per request here
        if page:
            cursor = page[-1].request_id
        visitors += [e.visitor_id for e in page]
    for worker in workers:
        worker.join()
    assert len(visitors) == len(set(visitors)) == total
    # each learns of the other's last commit by NOTIFY: within a second
    assert first.wait_for(total - 1, 1.0) and second.wait_for(total - 1, 1.0)
    assert first.last_id == second.last_id == total


def test_a_duplicate_sent_to_two_instances_is_flagged_once(
    journals: list[PostgresJournal],
) -> None:
    one, two = (Endpoint(j) for j in journals)
    batch = impression("twice")
    assert _post(one, batch).warnings == []
    again = _post(two, batch)
    assert [w.rule for w in again.warnings] == ["duplicate_event"]
    assert _post(two, conversion("purchase", "twice")).warnings == []  # saw one's impression


def test_another_instance_commit_wakes_a_wait_within_a_second(
    journals: list[PostgresJournal],
) -> None:
    waiting, writing = journals
    woke: list[float] = []
    thread = threading.Thread(target=lambda: woke.append(float(waiting.wait_for(0, 10))))
    thread.start()
    time.sleep(0.2)
    sent = time.monotonic()
    _post(Endpoint(writing), impression())
    thread.join()
    assert woke == [1.0]
    assert time.monotonic() - sent < 1.0
    assert waiting.last_id == 1


def test_a_clear_on_one_instance_resets_every_instance(
    journals: list[PostgresJournal],
) -> None:
    one, two = journals
    _post(Endpoint(one), impression())
    generations: list[int] = []
    one.add_listener(lambda _: generations.append(one.generation))
    two.clear()
    deadline = time.monotonic() + 5
    while one.generation != two.generation and time.monotonic() < deadline:
        time.sleep(0.01)
    assert one.generation == two.generation == 1
    assert generations and generations[-1] == 1
    assert one.requests() == [] and _post(Endpoint(one), impression()).id == 2


def test_retention_holds_across_instances(pg_url: str) -> None:
    journals = [PostgresJournal(pg_url, max_requests=5) for _ in range(2)]
    try:
        ids = [_post(Endpoint(journals[i % 2]), impression(f"r{i}")).id for i in range(12)]
        assert [r.id for r in journals[0].requests()] == ids[-5:]
        assert {e.visitor_id for e in journals[1].events()} == {f"r{i}" for i in range(7, 12)}
    finally:
        for journal in journals:
            journal.close()


def test_a_nul_character_is_stored_and_found(journals: list[PostgresJournal]) -> None:
    endpoint = Endpoint(journals[0])
    record = _post(endpoint, impression("nul\x00here"))
    assert record.verdict == "accepted"
    (event,) = journals[1].events(visitor_id="nul\x00here")
    assert event.visitor_id == "nul\x00here"


def test_the_schema_is_created_once_and_versioned(pg_url: str) -> None:
    starting = [threading.Thread(target=lambda: PostgresJournal(pg_url).close()) for _ in range(4)]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT value FROM logx_meta WHERE key = 'schema_version'").fetchone()
        assert row == (str(SCHEMA_VERSION),)
        assert prepare(conn) == SCHEMA_VERSION  # already there: nothing to do


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    PostgresJournal(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE logx_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalError, match="schema version 99, but this logx-mock writes"):
        PostgresJournal(pg_url)


def test_an_unreachable_database_says_what_to_check(pg_server: PostgresServer) -> None:
    url = pg_server.url("no_such_database").replace("postgres@", "postgres:secret@")
    with pytest.raises(JournalError) as failed:
        PostgresJournal(url)
    message = str(failed.value)
    assert "cannot open the journal postgresql://postgres:***@127.0.0.1:" in message
    assert 'database "no_such_database" does not exist' in message
    assert "secret" not in message


def test_urls() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("logx-mock.db") and not is_postgres_url("/tmp/postgresql.db")
    assert shown_url("postgresql://me:pw@db:5432/x?sslmode=require") == (
        "postgresql://me:***@db:5432/x?sslmode=require"
    )
    assert shown_url("postgresql://me@db/x") == "postgresql://me@db/x"


def test_a_database_that_goes_away_answers_503_then_recovers(
    own_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    journal = PostgresJournal(own_server.url())
    try:
        endpoint = Endpoint(journal)
        before = _post(endpoint, impression("before")).id
        own_server.stop("immediate")
        outcome = endpoint.handle(events_request(impression("lost")))
        assert outcome.status == 503 and ("retry-after", "1") in outcome.headers
        assert b"Nothing was recorded; resend the batch" in outcome.body
        with pytest.raises(JournalError, match="cannot be read now"):
            journal.requests()
        assert "journal write failed (postgresql://postgres@127.0.0.1" in caplog.text
        assert "answering 503" in caplog.text
        own_server.start()
        after = _post(endpoint, impression("after"))
        assert after.id == before + 1
        assert [r.id for r in journal.requests()] == [before, after.id]
    finally:
        journal.close()


def test_a_version_1_database_is_migrated_keeping_its_requests(pg_url: str) -> None:
    """Version 1 had no shared fault plan: open it, and it gains one, requests intact."""
    old = _post(Endpoint(MemoryJournal()), impression("from-v1"))
    body, is_json = body_cells(old)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert prepare(conn, target=1) == 0
        conn.execute(
            "INSERT INTO logx_requests VALUES (%s, %s, %s, %s, %s)",
            (old.id, old.verdict, meta_text(old), body, is_json),
        )
        conn.execute(
            "INSERT INTO logx_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            event_row(old.events[0], clean=True),
        )
        conn.execute("UPDATE logx_state SET next_id = 2, count = 1")
    journal = PostgresJournal(pg_url)
    try:
        with psycopg.connect(pg_url) as conn:
            version = conn.execute("SELECT value FROM logx_meta WHERE key = 'schema_version'")
            assert version.fetchone() == (str(SCHEMA_VERSION),)
        assert SCHEMA_VERSION == 4
        (kept,) = journal.requests()
        assert (kept.id, kept.payload, kept.events[0].visitor_id) == (1, old.payload, "from-v1")
        journal.faults.add(status=503, times=1)
        assert _post(Endpoint(journal), impression()).verdict == "faulted"
        assert _post(Endpoint(journal), impression()).id == 3
    finally:
        journal.close()
