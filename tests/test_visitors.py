"""The SQLite journal's visitor look-ups (journal/visitors.py): `events_visitor` led by a
bucket of request ids, walked bucket by bucket, and the early-conversion check answered
first from the visitors held in memory; each compared with what the journal held before
(a visitor index) or with the memory journal."""

from __future__ import annotations

import random
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    conversion,
    events_request,
    impression,
    one_transaction,
    post_batch,
    refuse_request,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import mockserver.journal.visitors as visitors
from mockserver import Endpoint, MemoryJournal, RequestRecord, SqliteJournal
from mockserver.journal.sqlite_schema import SCHEMA_VERSION
from mockserver.journal.visitors import ImpressionVisitors, bucket_chunks

EARLY = "conversion_before_decision"


def _fill(endpoint: Endpoint, count: int, visitor: str = "filler") -> None:
    """`count` impressions of `visitor`, sent at once (group commits)."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: post_batch(endpoint, impression(visitor)), range(count)))


def _early(record: RequestRecord) -> bool:
    return any(w.rule == EARLY for w in record.warnings)


def _ids(events: list[Any]) -> list[tuple[int, int]]:
    return [(event.request_id, event.index) for event in events]


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize(("low", "high"), [(1, 1), (1, 63), (1, 64), (5, 9_000), (640, 4_800)])
def test_bucket_chunks_cover_every_bucket_once_in_order(
    low: int, high: int, newest_first: bool
) -> None:
    chunks = list(bucket_chunks(low, high, newest_first=newest_first))
    walked = [bucket for chunk in chunks for bucket in chunk]
    expected = list(range(low >> 6, (high >> 6) + 1))
    assert walked == (expected[::-1] if newest_first else expected)
    sizes = [len(chunk) for chunk in chunks]
    # newest first grows 1, 2, 4... (what is looked for is mostly in the last buckets)
    full = [
        min(2**n, visitors.CHUNK) if newest_first else visitors.CHUNK for n in range(len(sizes))
    ]
    assert sizes[:-1] == full[:-1]
    assert 1 <= sizes[-1] <= full[-1]


def test_a_new_file_indexes_visitors_by_bucket_and_queries_use_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    with sqlite3.connect(path) as conn:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_visitor'"
        ).fetchone()
        query = (
            "SELECT request_id FROM events INDEXED BY events_visitor "
            f"WHERE {visitors.BUCKET} IN (?, ?) AND visitor_id = ?"
        )
        plan = " ".join(
            str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", (0, 1, "a"))
        )
    assert "(request_id >> 6), visitor_id" in sql
    # a seek on both columns for each bucket, not a scan of the buckets' entries
    assert "INDEX events_visitor (<expr>=? AND visitor_id=?)" in plan


def test_a_visitors_events_across_many_chunks_of_buckets(tmp_path: Path) -> None:
    """~5,000 requests: alice's three events are 64 buckets (a whole chunk) and more apart."""
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        endpoint = Endpoint(journal)
        first = post_batch(endpoint, impression("alice"))
        _fill(endpoint, 4_200)
        second = post_batch(endpoint, conversion("purchase", "alice"))
        _fill(endpoint, 700)
        third = post_batch(endpoint, impression("alice"))
        assert third.id - first.id > visitors.CHUNK * 64
        ids = [first.id, second.id, third.id]
        assert [e.request_id for e in journal.events(visitor_id="alice")] == ids
        assert [e.request_id for e in journal.events(visitor_id="alice", limit=2)] == ids[:2]
        tail = journal.events(visitor_id="alice", limit=2, tail=True)
        assert [e.request_id for e in tail] == ids[1:]
        assert [e.request_id for e in journal.events(visitor_id="alice", after=first.id)] == (
            ids[1:]
        )
        assert journal.events(visitor_id="alice", kind="conversion")[0].key == "purchase"
        assert journal.events(visitor_id="nobody") == []
        assert len(journal.events(visitor_id="filler", limit=1_000)) == 1_000
        # Alice's conversion came after her first impression, far back: no warning.
        assert not _early(second)
    finally:
        journal.close()


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One sequence of requests (random visitors, batches of one to three visitors, some
    conversions, some rejected) in a memory journal and in a SQLite file, ids alike."""
    rng = random.Random(16)
    memory = MemoryJournal()
    sqlite = SqliteJournal(tmp_path_factory.mktemp("twins") / "j.db")
    doors = Endpoint(memory), Endpoint(sqlite)
    for n in range(700):
        batch = impression(f"v{rng.randrange(6)}")
        for _ in range(rng.randrange(3)):
            extra = rng.choice([impression, lambda v: conversion("buy", v)])(f"v{rng.randrange(6)}")
            batch["visitors"] += extra["visitors"]
        if n % 50 == 7:
            batch["account_id"] = 12  # rejected: the wrong type
        for door in doors:
            post_batch(door, batch)
    yield memory, sqlite
    sqlite.close()


@settings(max_examples=300, deadline=None)
@given(
    visitor=st.sampled_from([f"v{n}" for n in range(7)]),
    after=st.integers(0, 720),
    after_index=st.one_of(st.none(), st.integers(0, 2)),
    limit=st.integers(1, 400),
    tail=st.booleans(),
    kind=st.sampled_from([None, "impression", "conversion"]),
)
def test_a_visitor_filter_answers_as_the_memory_journal(
    twins: Any,
    visitor: str,
    after: int,
    after_index: int | None,
    limit: int,
    tail: bool,
    kind: str | None,
) -> None:
    memory, sqlite = twins
    filters = {"visitor_id": visitor, **({"kind": kind} if kind else {})}
    asked = {"after": after, "after_index": after_index, "limit": limit, "tail": tail}
    expected = _ids(memory.events(**asked, **filters))
    assert _ids(sqlite.events(**asked, **filters)) == expected


def test_the_walk_stops_at_the_limit_of_a_small_chunk(
    twins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With chunks of two buckets the ~12 buckets take several queries: the same answers."""
    memory, sqlite = twins
    monkeypatch.setattr(visitors, "CHUNK", 2)
    for tail in (False, True):
        for limit in (1, 5, 150, 1_000):
            asked = {"visitor_id": "v3", "limit": limit, "tail": tail}
            assert _ids(sqlite.events(**asked)) == _ids(memory.events(**asked))


def test_early_conversions_flagged_as_with_a_visitor_index(tmp_path: Path) -> None:
    """The early-conversion check, from memory and by the walk: a visitor with no
    impression; one with an impression long before (chunks back); one whose only impression
    is later than the conversion; one whose impression was rejected."""
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        endpoint = Endpoint(journal)
        post_batch(endpoint, impression("early", timestamp=2_000_000_000_000))
        post_batch(endpoint, impression("long-ago"))
        rejected = impression("refused")
        rejected["account_id"] = 12
        assert post_batch(endpoint, rejected).verdict == "rejected"
        _fill(endpoint, 4_500)
        assert _early(post_batch(endpoint, conversion("buy", "nobody")))
        assert not _early(post_batch(endpoint, conversion("buy", "long-ago")))
        assert _early(post_batch(endpoint, conversion("buy", "early")))
        assert _early(post_batch(endpoint, conversion("buy", "refused")))
    finally:
        journal.close()


def test_the_visitors_held_survive_a_restart_and_an_eviction_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    Endpoint(journal).handle(events_request(impression("alice")))
    journal.close()
    journal = SqliteJournal(path, max_requests=3)
    try:
        endpoint = Endpoint(journal)
        assert not _early(post_batch(endpoint, conversion("buy", "alice")))  # read at opening
        for _ in range(3):
            post_batch(endpoint, impression("bob"))
        # Alice's impression is evicted: held in memory still, the walk finds none.
        assert journal.events(visitor_id="alice", kind="impression") == []
        assert _early(post_batch(endpoint, conversion("buy", "alice")))
    finally:
        journal.close()


def test_a_shared_file_knows_the_other_processes_visitors(tmp_path: Path) -> None:
    """Two writers of one file (as `serve --workers`' workers): one's impression, the
    other's conversion; and an impression after a writer read the visitors."""
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    one, two = SqliteJournal(path, shared=True), SqliteJournal(path, shared=True)
    try:
        first, second = Endpoint(one), Endpoint(two)
        post_batch(first, impression("alice"))
        assert not _early(post_batch(second, conversion("buy", "alice")))
        assert _early(post_batch(second, conversion("buy", "bob")))  # two has read the visitors
        post_batch(first, impression("bob"))
        assert not _early(post_batch(second, conversion("buy", "bob")))  # caught up since
    finally:
        one.close()
        two.close()


def test_a_version_5_file_is_migrated_to_the_bucket_led_index(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    endpoint = Endpoint(journal)
    first = post_batch(endpoint, impression("alice"))
    post_batch(endpoint, impression("bob"))
    journal.close()
    with sqlite3.connect(path) as conn:  # as logx-mock 5 wrote it: led by the visitor
        conn.execute("DROP INDEX events_visitor")
        conn.execute("CREATE INDEX events_visitor ON events (visitor_id)")
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    journal = SqliteJournal(path)
    try:
        later = post_batch(Endpoint(journal), conversion("buy", "alice"))
        assert not _early(later)
        assert _ids(journal.events(visitor_id="alice")) == [(first.id, 0), (later.id, 0)]
    finally:
        journal.close()
    with sqlite3.connect(path) as conn:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_visitor'"
        ).fetchone()
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert "request_id >> 6" in sql
    assert version == (str(SCHEMA_VERSION),) == ("6",)


def test_the_impression_visitors_held() -> None:
    held = ImpressionVisitors(recent=4)
    names = [f"visitor-{n}" for n in range(1_000)]
    held.load((name, n, 1_000 + n) for n, name in enumerate(names[:500]))  # chunk 0
    held.add([(None, 5_000, 1), ("visitor-3", 9_000, 1)])  # chunks 1 and 2, one commit
    assert all(held.chunks(name) in ([0], [2, 0]) for name in names[:500])
    assert held.chunks("visitor-3") == [2, 0]  # newest first
    assert held.chunks(None) == [1]
    # 2**18 bits a chunk: of 500 others, about none share a bit with the 500 in chunk 0.
    assert sum(bool(held.chunks(name)) for name in names[500:]) <= 5
    # The last impression of the visitors added last: the last two at least, four at most.
    assert held.last("visitor-3") == (9_000, 1)
    assert held.last(None) == (5_000, 1)
    assert held.last("visitor-499") is None  # place given up
    held.add([("visitor-7", 9_001, 6), ("visitor-3", 9_002, 5), ("visitor-3", 9_003, 4)])
    assert held.last("visitor-3") == (9_003, 4)  # a commit's last of a visitor wins
    assert held.last("visitor-7") == (9_001, 6)
    assert held.last(None) is None  # given up: the two last are held
    held.add([("visitor-8", 9_004, 1)])
    assert held.last("visitor-7") == (9_001, 6)  # three held: two to four are
    assert held.last("visitor-3") == (9_003, 4)
    held.add([("visitor-9", 9_005, 1)])
    assert held.last("visitor-7") is None
    assert held.last("visitor-9") == (9_005, 1) and held.last("visitor-8") == (9_004, 1)
    # Chunks whose requests are all gone are let go; a chunk partly gone is kept.
    held.trim(4_095)
    assert held.held_chunks == 2
    assert held.chunks("visitor-10") == []
    assert held.chunks(None) == [1]
    held.trim(8_200)
    assert held.chunks(None) == []
    assert held.chunks("visitor-3") == [2]


def _jump_ids(path: Path, to: int) -> None:
    """The file's next request id becomes `to` + 1, as after `to` requests (AUTOINCREMENT)."""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'requests'", (to,))


def test_an_early_conversion_reads_only_the_chunks_its_visitor_is_in(tmp_path: Path) -> None:
    """Alice's impressions are all in one chunk of a file of three: her conversion before
    them (the case the warning is for) reads the request of her last one, then that chunk,
    not the file's every bucket; a conversion of a visitor in no chunk reads nothing."""
    path = tmp_path / "j.db"
    for first_id in (0, 10_000, 20_000):
        if first_id:
            _jump_ids(path, first_id)
        journal = SqliteJournal(path)
        endpoint = Endpoint(journal)
        post_batch(endpoint, impression(f"bob-{first_id}"))
        if first_id == 10_000:
            post_batch(endpoint, impression("alice", timestamp=2_000_000_000_000))
        journal.close()
    journal = SqliteJournal(path)
    try:
        assert journal._visitors.held_chunks == 3
        statements: list[str] = []
        journal._writer.set_trace_callback(statements.append)
        assert _early(post_batch(Endpoint(journal), conversion("buy", "alice")))
        walks = [sql for sql in statements if "INDEXED BY events_visitor" in sql]
        assert len(walks) == 1, walks
        assert "IN (128, 129, " in walks[0]  # chunk 2: ids 8,192-12,287, buckets 128-191
        statements.clear()
        assert _early(post_batch(Endpoint(journal), conversion("buy", "nobody")))
        assert not [sql for sql in statements if "FROM events" in sql and "SELECT" in sql]
        journal._writer.set_trace_callback(None)
        assert journal.impression_before("alice", "not a time") is False
    finally:
        journal.close()


def test_evicted_chunks_are_let_go_after_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    post_batch(Endpoint(journal), impression("alice"))
    journal.close()
    _jump_ids(path, 5_000)
    journal = SqliteJournal(path, max_requests=2)
    try:
        endpoint = Endpoint(journal)
        assert journal._visitors.held_chunks == 1
        post_batch(endpoint, impression("bob"))  # chunk 1
        assert journal._visitors.held_chunks == 2
        post_batch(endpoint, impression("carol"))  # alice's request evicted: chunk 0 let go
        post_batch(endpoint, impression("dave"))
        assert journal._visitors.held_chunks == 1
        assert _early(post_batch(endpoint, conversion("buy", "alice")))
        assert not _early(post_batch(endpoint, conversion("buy", "dave")))
    finally:
        journal.close()


def test_a_visitor_decided_long_ago_converts_from_memory_and_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last impression held: found in its request; and past `RECENT` visitors, by the
    walk back to it, with the same answer."""
    monkeypatch.setattr(visitors, "RECENT", 4)
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        endpoint = Endpoint(journal)
        decided = post_batch(endpoint, impression("alice"))
        _fill(endpoint, 4_200)  # one visitor since: alice is still among the recent four
        assert journal._visitors.last("alice") == (decided.id, decided.events[0].timestamp)
        assert not _early(post_batch(endpoint, conversion("buy", "alice")))
        for n in range(4):
            post_batch(endpoint, impression(f"later-{n}"))
        assert journal._visitors.last("alice") is None  # given up: the walk finds it
        assert not _early(post_batch(endpoint, conversion("buy", "alice")))
    finally:
        journal.close()


def test_a_last_impression_rolled_back_is_not_counted(tmp_path: Path) -> None:
    """An impression whose transaction rolled back is held in memory, and its request id is
    given again to another request: the check reads that request and finds no impression
    of the visitor there."""
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        endpoint = Endpoint(journal)
        post_batch(endpoint, impression("bob"))  # request 1
        let_through = refuse_request(journal, 3)
        with one_transaction(journal):  # the ghost's impression (2) and a refused request (3)
            ghost = journal.append(endpoint._judge(events_request(impression("ghost"))))
            refused = journal.append(endpoint._judge(events_request(impression("bob"))))
        assert "disk says no" in str(refused.exception(timeout=10))
        assert "disk says no" in str(ghost.exception(timeout=10))
        let_through()
        assert journal._visitors.last("ghost") is not None  # held, though rolled back
        again = post_batch(endpoint, impression("carol"))
        assert again.id == 2  # the id the ghost's request had
        assert _early(post_batch(endpoint, conversion("buy", "ghost")))
        assert not _early(post_batch(endpoint, conversion("buy", "carol")))
    finally:
        journal.close()
