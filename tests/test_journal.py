"""Both journals: recording, history warnings, queries, ids, retention, durability."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import conversion, impression

import mockserver.journal.base as journal_base
from mockserver import (
    CoreRequest,
    Endpoint,
    Journal,
    JournalError,
    MemoryJournal,
    RequestRecord,
    SqliteJournal,
    ThreadedServer,
)
from mockserver.journal.rows import EMPTY_META, META_FIELDS
from mockserver.journal.sqlite_schema import SCHEMA_VERSION


def _post(endpoint: Endpoint, payload: object, **headers: str) -> RequestRecord:
    import json

    request = CoreRequest(
        "POST",
        "/v1/events",
        json.dumps(payload).encode(),
        headers=[("content-type", "application/json"), *headers.items()],
    )
    outcome = endpoint.handle(request)
    assert outcome.record is not None
    return outcome.record


def test_records_round_trip_with_events(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    sent = impression("v-1")
    record = _post(endpoint, sent)
    stored = endpoint.journal.request(record.id)
    assert stored is not None
    assert stored.payload == sent
    assert stored.verdict == "accepted" and stored.status == 204
    (event,) = stored.events
    assert (event.kind, event.visitor_id, event.request_id) == ("impression", "v-1", record.id)
    assert event.attributes == {"plan": "pro"}
    assert event.decisions[0]["experiment_id"] == "111127"


def test_ids_only_grow_even_across_clear(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    first = _post(endpoint, impression()).id
    second = _post(endpoint, impression()).id
    endpoint.journal.clear()
    assert endpoint.journal.requests() == []
    third = _post(endpoint, impression()).id
    assert first < second < third


def test_event_filters_after_and_limit(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    a = _post(endpoint, impression("alice"))
    _post(endpoint, conversion("purchase", "alice"))
    _post(endpoint, conversion("signup", "bob"))
    journal = endpoint.journal
    assert [e.key for e in journal.events(visitor_id="alice")] == ["campaign_activated", "purchase"]
    assert [e.visitor_id for e in journal.events(kind="conversion")] == ["alice", "bob"]
    assert [e.key for e in journal.events(after=a.id)] == ["purchase", "signup"]
    assert len(journal.events(limit=1)) == 1
    assert journal.events(key="purchase", visitor_id="bob") == []
    with pytest.raises(ValueError, match="unknown event filter"):
        journal.events(visitorId="alice")


def test_duplicates_are_flagged_across_requests_and_within_a_batch(
    make_journal: Callable[..., Journal],
) -> None:
    endpoint = Endpoint(make_journal())
    batch = impression("v")
    assert _post(endpoint, batch).warnings == []
    again = _post(endpoint, batch)
    assert [w.rule for w in again.warnings] == ["duplicate_event"]
    assert again.warnings[0].path == "visitors[0].snapshots[0].events[0].uuid"
    assert again.events[0].duplicate
    stored = endpoint.journal.request(again.id)
    assert stored is not None and stored.events[0].duplicate
    assert [w.rule for w in stored.warnings] == ["duplicate_event"]
    twice = impression("w")
    twice["visitors"].append(twice["visitors"][0])
    assert [e.duplicate for e in _post(endpoint, twice).events] == [False, True]


@pytest.mark.parametrize("uuid", ["zürich-1", "lone-\ud800", "plain-1"])
def test_duplicates_are_flagged_whatever_the_uuid_holds(
    make_journal: Callable[..., Journal], uuid: str
) -> None:
    # The SQLite journal asks for most keys as they are (ASCII) and normalizes the rest
    # as the stored cells are: both must find the earlier event.
    endpoint = Endpoint(make_journal())
    batch = impression("v")
    batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"] = uuid
    assert _post(endpoint, batch).warnings == []
    again = _post(endpoint, batch)
    assert [w.rule for w in again.warnings] == ["duplicate_event"]
    assert again.events[0].duplicate


def test_duplicates_are_flagged_when_plain_and_normalized_keys_are_asked_together(
    make_journal: Callable[..., Journal],
) -> None:
    # One look-up holds keys sent as their cells and keys that are not (non-ASCII): each
    # must come back as the key that was asked.
    endpoint = Endpoint(make_journal())
    batch = impression("v")
    batch["visitors"].append(json.loads(json.dumps(batch["visitors"][0])))
    events = [visitor["snapshots"][0]["events"][0] for visitor in batch["visitors"]]
    events[0]["uuid"], events[1]["uuid"] = "plain-2", "zürich-2"
    assert _post(endpoint, batch).warnings == []
    again = _post(endpoint, batch)
    assert [w.rule for w in again.warnings] == ["duplicate_event", "duplicate_event"]
    assert [e.duplicate for e in again.events] == [True, True]


def test_rejected_events_make_no_history(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    bad = impression("v")
    bad["account_id"] = 5
    assert _post(endpoint, bad).verdict == "rejected"
    bad["account_id"] = "5"
    assert _post(endpoint, bad).warnings == []


def test_conversion_before_any_decision_is_warned(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    early = _post(endpoint, conversion("purchase", "newcomer"))
    assert [w.rule for w in early.warnings] == ["conversion_before_decision"]
    _post(endpoint, impression("newcomer"))
    assert _post(endpoint, conversion("purchase", "newcomer")).warnings == []


def test_retention_cap_evicts_the_oldest(
    make_journal: Callable[..., Journal], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Endpoint(make_journal(max_requests=3))
    caplog.set_level("INFO", logger="logx_mock")
    ids = [_post(endpoint, impression(f"v{i}")).id for i in range(5)]
    assert [r.id for r in endpoint.journal.requests()] == ids[2:]
    assert {e.visitor_id for e in endpoint.journal.events()} == {"v2", "v3", "v4"}
    assert "journal cap 3 reached: evicted the 1 oldest request(s)" in caplog.text


@pytest.mark.parametrize("make_journal", ["sqlite", "postgres"], indirect=True)
def test_evictions_under_load_log_a_line_then_a_sum_at_most_every_few_seconds(
    make_journal: Callable[..., Journal],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = make_journal(max_requests=2)  # (the memory journal logs once per compaction)
    endpoint = Endpoint(journal)
    caplog.set_level("INFO", logger="logx_mock")
    monkeypatch.setattr(journal_base, "EVICTIONS_LOGGED_EVERY", 0.5)
    for i in range(6):  # evicts one with each commit past the second
        _post(endpoint, impression(f"v{i}"))
    lines = [r.getMessage() for r in caplog.records if "journal cap" in r.getMessage()]
    assert lines == ["journal cap 2 reached: evicted the 1 oldest request(s)"]
    time.sleep(0.6)
    _post(endpoint, impression("late"))
    lines = [r.getMessage() for r in caplog.records if "journal cap" in r.getMessage()]
    assert len(lines) == 2
    assert re.fullmatch(
        r"journal cap 2 reached: evicted the 4 oldest request\(s\) in the last \d+s", lines[1]
    )
    assert [r.id for r in journal.requests()][-1] == 7 and len(journal.requests()) == 2


def test_max_requests_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_requests must be at least 1, got 0"):
        MemoryJournal(max_requests=0)


def test_wait_for_wakes_on_commit(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    assert not endpoint.journal.wait_for(0, timeout=0.05)
    timer = threading.Timer(0.1, lambda: _post(endpoint, impression()))
    timer.start()
    started = time.monotonic()
    assert endpoint.journal.wait_for(0, timeout=10)
    assert time.monotonic() - started < 5
    timer.join()


def test_concurrent_appends_all_commit_with_unique_ids(
    make_journal: Callable[..., Journal],
) -> None:
    endpoint = Endpoint(make_journal())
    results: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            record = _post(endpoint, impression(f"t{n}-{i}"))
            with lock:
                results.append(record.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 200
    assert len(endpoint.journal.requests(limit=1000)) == 200
    assert len(endpoint.journal.events(limit=1000)) == 200


def test_sqlite_journal_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    first = _post(Endpoint(journal), impression("persisted")).id
    journal.close()
    reopened = SqliteJournal(path)
    try:
        assert [e.visitor_id for e in reopened.events()] == ["persisted"]
        assert reopened.last_id == first
        assert _post(Endpoint(reopened), impression()).id > first
    finally:
        reopened.close()


def test_sqlite_schema_version_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(JournalError, match="has schema version 99, but this logx-mock writes"):
        SqliteJournal(path)


def test_sqlite_unopenable_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        JournalError, match="give SqliteJournal a writable path, or use a MemoryJournal"
    ):
        SqliteJournal(tmp_path)  # a folder, not a file
    with pytest.raises(JournalError, match=r"the folder '.*missing-dir' does not exist; create it"):
        SqliteJournal(tmp_path / "missing-dir" / "j.db")


def test_failed_write_rejects_the_future_and_keeps_going(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        endpoint = Endpoint(journal)
        record = _post(endpoint, impression())
        broken = RequestRecord(
            id=0,
            received_at=0,
            method="POST",
            path="/v1/events",
            host=None,
            headers=[],
            client_ip=None,
            strict=False,
            strict_header=None,
            status=204,
            verdict="accepted",
            payload={"unserializable": {1, 2}},
        )
        with pytest.raises(JournalError, match="could not record"):
            journal.append(broken).result(timeout=10)
        assert _post(endpoint, impression()).id > record.id
    finally:
        journal.close()


def test_listener_errors_do_not_stop_recording(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    calls: list[int] = []

    def broken(last_id: int) -> None:
        calls.append(last_id)
        raise RuntimeError("listener bug")

    endpoint.journal.add_listener(broken)
    first = _post(endpoint, impression()).id
    second = _post(endpoint, impression()).id
    assert calls == [first, second]


def test_a_journal_that_cannot_be_read_answers_503_not_500(
    sqlite_server: ThreadedServer, journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import requests

    requests.post(sqlite_server.events_url, json=impression(), timeout=10)
    with sqlite3.connect(journal_path) as conn:  # another tool breaks the file under us
        conn.execute("DROP TABLE events")
    answer = requests.get(sqlite_server.url + "/_mock/events", timeout=10)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    assert "cannot be read now: no such table: events" in answer.json()["detail"]
    assert "GET /_mock/events answered 503: the journal" in caplog.text


def test_memory_journal_keeps_rows_not_object_trees() -> None:
    """Full garbage collections walk every tracked object: a journal that kept each
    request as dicts and lists (18 tracked objects per one-impression request) made them
    pause the server longer the more it held. Rows of plain values are not tracked."""
    import gc

    endpoint = Endpoint(MemoryJournal())
    for i in range(20):  # warm up caches and lazily built state
        _post(endpoint, impression(f"warm-{i}"))
    gc.collect()
    before = len(gc.get_objects())
    for i in range(500):
        _post(endpoint, impression(f"visitor-{i}"))
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 50, f"{grown} tracked objects for 500 requests"
    stored = endpoint.journal.events(limit=1000)
    assert [e.visitor_id for e in stored][-500:] == [f"visitor-{i}" for i in range(500)]


def test_lone_surrogates_in_what_is_kept_round_trip(make_journal: Callable[..., Journal]) -> None:
    """JSON escapes a lone surrogate but UTF-8 cannot carry it: the stored meta falls back
    to an escaping encoder, and reading gives back the same text."""
    endpoint = Endpoint(make_journal())
    payload = impression()
    payload["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = "a\ud800"
    record = _post(endpoint, payload)
    assert [v.to_dict()["actual"] for v in record.errors] == ["a\ud800"]
    stored = endpoint.journal.request(record.id)
    assert stored is not None
    assert [v.to_dict() for v in stored.errors] == [v.to_dict() for v in record.errors]
    assert stored.payload == record.payload


def test_the_shared_journal_counts_by_two_index_lookups(tmp_path: Path) -> None:
    """`serve --workers` counts the table on every commit: that must not read all of it."""
    from mockserver.journal.sqlite import ID_RANGE

    SqliteJournal(tmp_path / "j.db").close()
    with sqlite3.connect(tmp_path / "j.db") as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + ID_RANGE))
    assert "SCAN requests" not in plan, plan
    assert plan.count("SEARCH requests") == 2, plan


@pytest.mark.parametrize(
    ("start", "tail"), [((0, None), False), ((2, None), True), ((1, 0), False), ((1, 0), True)]
)
def test_a_key_filter_reads_the_key_index_unless_it_is_the_impressions_key(
    tmp_path: Path, start: tuple[int, int | None], tail: bool
) -> None:
    """Impressions (`campaign_activated`) have no entry in `events_key` (schema 4): a filter
    on any other key must still be answered from the index, not by reading every event."""
    from mockserver.journal.sqlite import event_query

    SqliteJournal(tmp_path / "j.db").close()
    with sqlite3.connect(tmp_path / "j.db") as conn:

        def plan(filters: dict[str, str]) -> str:
            sql, params = event_query(start, 10, tail, filters)
            return " ".join(
                str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            )

        assert "USING INDEX events_key (key=?" in plan({"key": "purchase"})
        assert "USING INDEX events_key (key=?" in plan({"kind": "conversion", "key": "signup"})
        assert "events_key" not in plan({"key": "campaign_activated"})
        assert "events_key" not in plan({"visitor_id": "alice"})


def test_a_version_3_sqlite_file_is_migrated_keeping_its_events_and_filters(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    endpoint = Endpoint(SqliteJournal(path))
    first = _post(endpoint, impression("alice"))
    _post(endpoint, conversion("purchase", "alice"))
    endpoint.journal.close()
    with sqlite3.connect(path) as conn:  # as logx-mock wrote it before: every key indexed
        conn.execute("DROP INDEX events_key")
        conn.execute("CREATE INDEX events_key ON events (key)")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    reopened = SqliteJournal(path)
    try:
        again = Endpoint(reopened)
        _post(again, impression("bob"))
        _post(again, conversion("purchase", "bob"))
        assert [e.visitor_id for e in reopened.events(key="purchase")] == ["alice", "bob"]
        assert [e.visitor_id for e in reopened.events(key="campaign_activated")] == [
            "alice",
            "bob",
        ]
        assert [e.visitor_id for e in reopened.events(key="purchase", tail=True, limit=1)] == [
            "bob"
        ]
        assert reopened.request(first.id) is not None
    finally:
        reopened.close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        (index,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_key'")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert version == (str(SCHEMA_VERSION),)
    assert index[0].endswith("WHERE key IS NOT 'campaign_activated'")


def test_a_version_4_file_with_every_meta_field_reads_the_same(tmp_path: Path) -> None:
    """Version 4 stored every field of a request's meta; version 5 leaves out the empty ones
    (`EMPTY_META`). A version 4 file is upgraded, and its rows read as they were written."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    endpoint = Endpoint(journal)
    journal.faults.add(status=503, times=1)  # a fault, recorded in the meta
    faulted = _post(endpoint, impression("alice"))
    clean = _post(endpoint, impression("bob"))
    bad = impression("carol")
    bad["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = "soon"
    refused = _post(endpoint, bad)
    written = journal.requests()
    journal.close()
    assert faulted.fault is not None and refused.errors and not clean.errors
    with sqlite3.connect(path) as conn:  # every field, as version 4 wrote them
        for request_id, meta_json in conn.execute("SELECT id, meta FROM requests").fetchall():
            meta = json.loads(meta_json)
            if request_id == clean.id:
                assert set(meta).isdisjoint(EMPTY_META)  # version 5 left them out
            full = {name: meta.get(name) for name in META_FIELDS}
            full["keys"] = meta.get("keys", {})
            full["headers"] = meta["headers"]
            for name in ("errors", "warnings", "unknown_fields"):
                full[name] = meta.get(name, [])
            assert list(full) == [*META_FIELDS, "headers", "errors", "warnings", "unknown_fields"]
            conn.execute(
                "UPDATE requests SET meta = ? WHERE id = ?", (json.dumps(full), request_id)
            )
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    reopened = SqliteJournal(path)
    try:
        assert reopened.requests() == written
    finally:
        reopened.close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == (str(SCHEMA_VERSION),)


def test_scan_reads_a_range_with_events_and_flags(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal())
    batch = impression("scanned")
    ids = [_post(endpoint, batch).id for _ in range(3)]
    journal = endpoint.journal
    assert [r.id for r in journal.scan()] == ids
    (middle,) = journal.scan(after=ids[0], until=ids[1])
    assert middle.id == ids[1] and middle.events[0].duplicate
    assert list(journal.scan(after=ids[2])) == []
    repeated = journal.repeated_uuids()
    uuid = batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"]
    assert repeated is None or repeated == {uuid}


def test_a_capped_memory_journal_reads_exactly_the_newest_and_frees_in_slices(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the cap, reads and history forget the oldest request at once; its rows leave
    memory a slice at a time (one list shift and one log line per slice, not per request),
    so memory holds at most a sixteenth more rows than the cap."""
    cap = 64
    journal = MemoryJournal(max_requests=cap)
    endpoint = Endpoint(journal)
    caplog.set_level("INFO", logger="logx_mock")
    batches = [impression(f"v{i}") for i in range(150)]
    ids = []
    for i, batch in enumerate(batches):
        ids.append(_post(endpoint, batch).id)
        kept = ids[-cap:]
        assert [r.id for r in journal.requests(limit=1000)] == kept
        assert [e.visitor_id for e in journal.events(limit=1000)] == [
            f"v{n}" for n in range(max(0, i + 1 - cap), i + 1)
        ]
        assert len(journal._rows) <= cap + cap // 16 and len(journal._brought) == len(journal._rows)
        if len(ids) > cap:
            evicted = ids[-cap - 1]
            assert journal.request(evicted) is None
            assert [r.id for r in journal.requests(after=evicted - 1, limit=1)] == [kept[0]]
            assert journal.events(after=evicted - 1, limit=1)[0].request_id == kept[0]
    evictions = [int(n) for n in re.findall(r"evicted the (\d+) oldest", caplog.text)]
    assert evictions == [cap // 16] * len(evictions) and 0 < len(evictions) < 150 - cap
    assert sum(evictions) + len(journal._rows) == 150
    # History holds exactly what is readable: a resend of an evicted event is new again.
    assert [e.duplicate for e in _post(endpoint, batches[0]).events] == [False]
    assert [e.duplicate for e in _post(endpoint, batches[-1]).events] == [True]
    journal.clear()
    assert journal.requests() == [] and journal.events() == []
    assert _post(endpoint, impression("after-clear")).id == ids[-1] + 3


def test_a_memory_journal_refuses_what_it_cannot_store_on_every_path() -> None:
    """A payload the journal cannot serialize is refused alone, as JournalError (the
    door answers 503), whether committed from a thread, a future, a coroutine or with a
    callback; the next request gets the next id."""
    import asyncio

    journal = MemoryJournal()
    endpoint = Endpoint(journal)

    def broken() -> RequestRecord:
        record = endpoint._judge(
            CoreRequest("POST", "/v1/events", json.dumps(impression()).encode())
        )
        record.payload, record.source = {"unserializable": {1, 2}}, None
        return record

    with pytest.raises(JournalError, match="could not record it: Object of type set"):
        journal.commit_sync(broken())
    with pytest.raises(JournalError, match="could not record it"):
        journal.append(broken()).result()
    with pytest.raises(JournalError, match="could not record it"):
        asyncio.run(journal.commit(broken()))
    called_back: list[Exception | None] = []
    journal.commit_soon(broken(), called_back.append)  # at once: it commits in this thread
    assert len(called_back) == 1 and isinstance(called_back[0], JournalError)
    assert journal.requests() == []
    assert _post(endpoint, impression()).id == 1
    good = endpoint._judge(CoreRequest("POST", "/v1/events", json.dumps(impression()).encode()))
    journal.commit_soon(good, called_back.append)
    assert called_back[1:] == [None] and good.id == 2


def test_shared_journals_keep_the_cap_between_them(tmp_path: Path) -> None:
    """`serve --workers`: each commit counts what every process inserted (and cleared)."""
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    journals = [SqliteJournal(path, max_requests=5, shared=True) for _ in range(2)]
    endpoints = [Endpoint(journal) for journal in journals]
    try:
        for i in range(12):
            _post(endpoints[i % 2], impression(f"v{i}"))
        assert [r.id for r in journals[0].requests()] == list(range(8, 13))
        journals[1].clear()  # ids go on from 13: the oldest id seen is far behind
        for i in range(7):
            _post(endpoints[i % 2], impression(f"w{i}"))
        assert [r.id for r in journals[1].requests()] == list(range(15, 20))
    finally:
        for journal in journals:
            journal.close()
