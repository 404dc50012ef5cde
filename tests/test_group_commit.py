"""Group commits from the event loop, on SQLite and PostgreSQL: the requests of one loop
tick share one transaction, their waiters wake only after it is committed, history sees
the earlier requests of the same tick, a failed commit fails every request in it, and a
request that cannot be stored fails alone."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import conversion, events_request, impression, one_transaction, refuse_request

from mockserver import (
    Endpoint,
    Journal,
    JournalError,
    Outcome,
    RequestRecord,
    SqliteJournal,
)
from mockserver.journal.group import GroupCommitJournal
from mockserver.journal.postgres import PostgresJournal


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GroupCommitJournal]:
    opened: GroupCommitJournal
    if request.param == "sqlite":
        opened = SqliteJournal(tmp_path / "j.db")
    else:
        opened = PostgresJournal(request.getfixturevalue("pg_url"))
    yield opened
    opened.close()


def _stored_rows(journal: GroupCommitJournal, request_id: int) -> int:
    """How many rows have this id, seen from another connection (as another reader)."""
    if isinstance(journal, SqliteJournal):
        with sqlite3.connect(journal.path) as other:
            query = "SELECT COUNT(*) FROM requests WHERE id = ?"
            return int(other.execute(query, (request_id,)).fetchone()[0])
    assert isinstance(journal, PostgresJournal)
    with psycopg.connect(journal.url) as conn:
        query = "SELECT COUNT(*) FROM logx_requests WHERE id = %s"
        row = conn.execute(query, (request_id,)).fetchone()
        assert row is not None
        return int(row[0])


def _refuse_inserts(journal: GroupCommitJournal) -> None:
    """Make the database refuse every new request (as a full disk would)."""
    if isinstance(journal, SqliteJournal):
        journal._writer.execute(
            "CREATE TRIGGER nope BEFORE INSERT ON requests BEGIN "
            "SELECT RAISE(ABORT, 'disk says no'); END"
        )
        return
    assert isinstance(journal, PostgresJournal)
    with psycopg.connect(journal.url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION nope() RETURNS trigger AS "
            "$$ BEGIN RAISE EXCEPTION 'disk says no'; END $$ LANGUAGE plpgsql"
        )
        conn.execute(
            "CREATE TRIGGER nope BEFORE INSERT ON logx_requests "
            "FOR EACH ROW EXECUTE FUNCTION nope()"
        )


def _judged(endpoint: Endpoint, uuid: str) -> RequestRecord:
    payload = impression()
    event = payload["visitors"][0]["snapshots"][0]["events"][0]
    event["uuid"], event["timestamp"] = uuid, 1_760_000_000_000  # same uuid = same event
    return endpoint._judge(events_request(payload))


def test_one_tick_is_one_commit_and_every_waiter_sees_its_row(
    journal: GroupCommitJournal,
) -> None:
    endpoint = Endpoint(journal)
    commits: list[int] = []
    journal.add_listener(commits.append)
    records = [_judged(endpoint, f"u-{i}") for i in range(50)]

    async def commit_one(record: RequestRecord) -> tuple[int, int]:
        committed = await journal.commit(record)
        return committed.id, _stored_rows(journal, committed.id)

    async def main() -> list[tuple[int, int]]:
        return await asyncio.gather(*(commit_one(r) for r in records))

    results = asyncio.run(main())
    assert [row for _, row in results] == [1] * 50  # committed before the waiter woke
    assert [request_id for request_id, _ in results] == list(range(1, 51))
    assert commits == [50]  # one transaction, one notification
    assert [e.request_id for r in records for e in r.events] == list(range(1, 51))


def test_ticks_committed_together_are_woken_by_one_call_into_the_loop(
    journal: GroupCommitJournal,
) -> None:
    """Ticks that queued while the writer was busy share its next transaction, and their
    waiters are woken by one call into the loop (a write to its wake-up pipe), in order."""
    endpoint = Endpoint(journal)
    records = [_judged(endpoint, f"t-{i}") for i in range(3)]
    commits: list[int] = []
    journal.add_listener(commits.append)
    started = threading.Event()

    def busy(_: object) -> None:  # holds the writer while the ticks queue up
        started.set()
        time.sleep(0.3)

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        calls: list[object] = []
        call = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            calls.append(callback)
            return call(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        holder = asyncio.create_task(asyncio.to_thread(journal.change_plan, busy))
        await asyncio.to_thread(started.wait, 10)
        waiting = []
        for record in records:  # one tick each
            waiting.append(asyncio.create_task(journal.commit(record)))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        committed = await asyncio.gather(*waiting)
        await holder
        wakeups = [
            c for c in calls if getattr(c, "__module__", "") == GroupCommitJournal.__module__
        ]
        assert len(wakeups) == 1, calls
        return [record.id for record in committed]

    ids = asyncio.run(main())
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert commits[-1] == ids[-1]
    assert len(commits) == 1 or commits[-2] < ids[0]  # the three in one transaction


def test_duplicates_within_one_tick_are_flagged(journal: GroupCommitJournal) -> None:
    endpoint = Endpoint(journal)
    first, again, other = (_judged(endpoint, u) for u in ("same", "same", "other"))

    async def main() -> None:
        await asyncio.gather(*(journal.commit(r) for r in (first, again, other)))

    asyncio.run(main())
    assert [r.events[0].duplicate for r in (first, again, other)] == [False, True, False]
    stored = journal.request(again.id)
    assert stored is not None
    assert [w.rule for w in stored.warnings] == ["duplicate_event"]
    assert [e.duplicate for e in stored.events] == [True]


def test_a_conversion_sees_the_impressions_of_its_own_tick(journal: GroupCommitJournal) -> None:
    """A conversion's history holds the impressions committed before it in the same
    transaction (not in the table yet); one whose visitor has none is still warned."""
    endpoint = Endpoint(journal)
    seen = endpoint._judge(events_request(impression("seen-first")))
    followed = endpoint._judge(events_request(conversion("purchase", "seen-first")))
    stranger = endpoint._judge(events_request(conversion("purchase", "no-impression")))

    async def main() -> None:
        await asyncio.gather(*(journal.commit(r) for r in (seen, followed, stranger)))

    asyncio.run(main())
    assert [[w.rule for w in r.warnings] for r in (seen, followed, stranger)] == [
        [],
        [],
        ["conversion_before_decision"],
    ]
    assert seen.id + 2 == followed.id + 1 == stranger.id  # one tick, in order


def test_every_row_of_a_large_group_is_stored_once_in_order(journal: GroupCommitJournal) -> None:
    """150 events and 3 requests in one transaction (SQLite inserts them by statements of
    64, 64, 16, 4 and 2 rows): each is stored once, where it belongs."""
    endpoint = Endpoint(journal)

    def batch(visitors: int, tag: str) -> RequestRecord:
        payload = impression(tag)
        one = payload["visitors"][0]
        payload["visitors"] = [json.loads(json.dumps(one)) for _ in range(visitors)]
        for i, visitor in enumerate(payload["visitors"]):
            visitor["visitor_id"] = f"{tag}-{i}"
            visitor["snapshots"][0]["events"][0]["uuid"] = f"{tag}-uuid-{i}"
        return endpoint._judge(events_request(payload))

    records = [batch(60, "a"), batch(50, "b"), batch(40, "c")]

    async def main() -> None:
        await asyncio.gather(*(journal.commit(r) for r in records))

    asyncio.run(main())
    stored = journal.events(limit=1000)
    assert [(e.request_id, e.index, e.visitor_id) for e in stored] == [
        (record.id, i, f"{tag}-{i}")
        for record, tag, count in zip(records, "abc", (60, 50, 40), strict=True)
        for i in range(count)
    ]
    assert [r.id for r in journal.requests()] == [r.id for r in records]
    assert [e.uuid for e in journal.events(key="campaign_activated", visitor_id="b-49")] == [
        "b-uuid-49"
    ]


def test_ids_keep_growing_after_clear(journal: GroupCommitJournal) -> None:
    endpoint = Endpoint(journal)

    async def commit(uuid: str) -> int:
        return (await journal.commit(_judged(endpoint, uuid))).id

    assert asyncio.run(commit("a")) == 1
    journal.clear()
    assert asyncio.run(commit("b")) == 2
    assert [r.id for r in journal.requests()] == [2]


def test_a_failed_commit_fails_every_request_of_the_tick(journal: GroupCommitJournal) -> None:
    endpoint = Endpoint(journal)
    first = asyncio.run(journal.commit(_judged(endpoint, "first"))).id
    records = [_judged(endpoint, f"t-{i}") for i in range(3)]
    _refuse_inserts(journal)

    async def main() -> list[object]:
        return await asyncio.gather(*map(journal.commit, records), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, JournalError) for o in outcomes), outcomes
    assert "disk says no" in str(outcomes[0])
    assert [r.id for r in journal.requests()] == [first]  # rolled back together


def test_an_unshared_file_gives_a_rolled_back_commits_ids_again(tmp_path: Path) -> None:
    # The writer of a file no other process writes counts the ids itself (no query per
    # commit); a transaction rolled back after one job's rows were inserted must not leave
    # that count ahead, nor behind.
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    assert asyncio.run(journal.commit(_judged(endpoint, "first"))).id == 1
    let_through = refuse_request(journal, 3)
    with one_transaction(journal):  # two jobs
        futures = [journal.append(_judged(endpoint, f"job-{i}")) for i in range(2)]
    for future in futures:  # the first job's row went in, the second was refused: both fail
        assert "disk says no" in str(future.exception(timeout=10))
    let_through()
    assert asyncio.run(journal.commit(_judged(endpoint, "next"))).id == 2
    assert asyncio.run(journal.commit(_judged(endpoint, "after"))).id == 3
    assert [r.id for r in journal.requests()] == [1, 2, 3]
    journal.close()
    reopened = SqliteJournal(tmp_path / "j.db")  # and a new writer goes on from the file
    assert asyncio.run(reopened.commit(_judged(Endpoint(reopened), "reopened"))).id == 4
    reopened.close()


def test_a_row_the_table_refuses_fails_its_whole_transaction_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    # The inserts are OR ROLLBACK (no statement journal): SQLite ends the transaction itself
    # when a row is refused, and the writer must neither keep a row of it nor stop.
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    assert asyncio.run(journal.commit(_judged(endpoint, "first"))).id == 1
    behind = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
    behind.execute(  # the id the second job of the next transaction will be given
        "INSERT INTO requests (id, verdict, meta, body, body_is_json) "
        "VALUES (3, 'x', '{}', NULL, 0)"
    )
    with one_transaction(journal):  # two jobs
        futures = [journal.append(_judged(endpoint, f"job-{i}")) for i in range(2)]
    for future in futures:  # the first job's row went in, the second's id was taken
        assert "UNIQUE constraint failed: requests.id" in str(future.exception(timeout=10))
    behind.execute("DELETE FROM requests WHERE id = 3")
    behind.close()
    assert asyncio.run(journal.commit(_judged(endpoint, "next"))).id == 4  # asked the file
    assert [r.id for r in journal.requests()] == [1, 4]  # nothing of the refused transaction
    with sqlite3.connect(tmp_path / "j.db") as conn:  # nor any of its events
        stored = conn.execute("SELECT DISTINCT request_id FROM events ORDER BY 1").fetchall()
    assert stored == [(1,), (4,)]
    journal.close()


def test_a_file_handed_to_workers_is_asked_for_ids_and_the_plan_again(tmp_path: Path) -> None:
    # `serve --workers`' parent holds the file (unshared) and leaves it to its workers
    # (`leave_checkpoints`): from then on, what it remembered of the file may be stale.
    path = tmp_path / "j.db"
    parent = SqliteJournal(path)
    endpoint = Endpoint(parent)
    assert asyncio.run(parent.commit(_judged(endpoint, "parent-1"))).id == 1
    parent.faults.add(status=500)  # the parent knows the plan's version now
    parent.leave_checkpoints()
    worker = SqliteJournal(path, shared=True)
    assert asyncio.run(worker.commit(_judged(Endpoint(worker), "worker-1"))).id == 2
    worker.faults.clear()
    worker.close()
    committed = asyncio.run(parent.commit(_judged(endpoint, "parent-2")))
    assert committed.id == 3 and committed.fault is None  # the worker's id and plan seen
    assert [r.id for r in parent.requests()] == [1, 2, 3]
    parent.close()


def test_a_request_that_cannot_be_stored_fails_alone(journal: GroupCommitJournal) -> None:
    endpoint = Endpoint(journal)
    good = _judged(endpoint, "good")
    broken = _judged(endpoint, "broken")
    broken.payload, broken.source = {"unserializable": {1, 2}}, None

    async def main() -> list[object]:
        return await asyncio.gather(
            journal.commit(good), journal.commit(broken), return_exceptions=True
        )

    stored, failed = asyncio.run(main())
    assert isinstance(stored, RequestRecord) and stored.id == 1
    assert isinstance(failed, JournalError)
    assert "could not record the request: Object of type set" in str(failed)
    assert [r.id for r in journal.requests()] == [1]


def test_a_cancelled_waiter_does_not_stop_the_others(journal: GroupCommitJournal) -> None:
    endpoint = Endpoint(journal)
    records = [_judged(endpoint, f"c-{i}") for i in range(3)]

    async def main() -> list[int]:
        tasks = [asyncio.ensure_future(journal.commit(r)) for r in records]
        await asyncio.sleep(0)  # all three have joined the tick
        tasks[0].cancel()
        done = await asyncio.gather(*tasks[1:])
        return [r.id for r in done]

    assert asyncio.run(main()) == [2, 3]
    assert len(journal.requests()) == 3  # the cancelled request was committed all the same


def test_endpoint_answers_503_when_the_tick_cannot_be_committed(
    journal: GroupCommitJournal,
) -> None:
    endpoint = Endpoint(journal)
    _refuse_inserts(journal)

    async def main() -> list[int]:
        outcomes = await asyncio.gather(
            *(endpoint.handle_async(events_request(impression())) for _ in range(3))
        )
        return [o.status for o in outcomes]

    assert asyncio.run(main()) == [503, 503, 503]


@pytest.mark.parametrize("given", [False, True], ids=["running-loop", "loop-given"])
def test_commit_soon_calls_back_on_the_loop_once_the_tick_is_committed(
    journal: GroupCommitJournal, given: bool
) -> None:
    """The loop is the running one, or the one the caller gives (`serve`'s protocol does:
    asyncio's look-up makes a system call each time), and then asyncio is not asked."""
    endpoint = Endpoint(journal)
    records = [_judged(endpoint, f"soon-{i}") for i in range(3)]
    asked: list[int] = []
    running = asyncio.get_running_loop

    def counted() -> asyncio.AbstractEventLoop:
        asked.append(1)
        return running()

    async def main() -> list[tuple[int, int, Exception | None, int]]:
        loop = asyncio.get_running_loop() if given else None
        loop_thread = threading.get_ident()
        called: list[tuple[int, int, Exception | None, int]] = []
        finished = asyncio.Event()

        def done(record: RequestRecord, error: Exception | None) -> None:
            # Where it is called, what it got, and whether another reader sees the row.
            on_loop = int(threading.get_ident() == loop_thread)
            called.append((record.id, on_loop, error, _stored_rows(journal, record.id)))
            if len(called) == len(records):
                finished.set()

        asyncio.get_running_loop = counted  # type: ignore[assignment]
        try:
            for record in records:
                journal.commit_soon(record, lambda error, r=record: done(r, error), loop)
        finally:
            asyncio.get_running_loop = running
        assert called == []  # nothing before the commit
        await asyncio.wait_for(finished.wait(), 10)
        return called

    assert asyncio.run(main()) == [(1, 1, None, 1), (2, 1, None, 1), (3, 1, None, 1)]
    assert len(asked) == (0 if given else 3)


def test_the_writer_lets_a_committed_group_go_before_the_next_job(
    journal: GroupCommitJournal,
) -> None:
    """Once a group is committed and its waiters woken, the writer keeps no reference to its
    records while it waits for more: they go with the last waiter that holds them (freed by
    the loop that answered them, not by the writer when the next job comes)."""
    held = [_judged(Endpoint(journal), "let-go")]
    freed = threading.Event()
    weakref.finalize(held[0], freed.set)

    async def main(record: RequestRecord) -> None:
        committed = asyncio.Event()
        journal.commit_soon(record, lambda _: committed.set())
        await asyncio.wait_for(committed.wait(), 10)

    asyncio.run(main(held[0]))
    assert held.pop().id == 1
    deadline = time.monotonic() + 5
    while not freed.is_set() and time.monotonic() < deadline:
        gc.collect()  # a cycle of its own would wait for the collector; a live holder would not
        time.sleep(0.01)
    assert freed.is_set()  # and no other job has come since


def test_commit_soon_passes_on_a_failed_commit(journal: GroupCommitJournal) -> None:
    endpoint = Endpoint(journal)
    records = [_judged(endpoint, f"refused-{i}") for i in range(2)]
    _refuse_inserts(journal)

    async def main() -> list[Exception | None]:
        errors: list[Exception | None] = []
        finished = asyncio.Event()

        def done(error: Exception | None) -> None:
            errors.append(error)
            if len(errors) == len(records):
                finished.set()

        for record in records:
            journal.commit_soon(record, done)
        await asyncio.wait_for(finished.wait(), 10)
        return errors

    errors = asyncio.run(main())
    assert all(isinstance(e, JournalError) and "disk says no" in str(e) for e in errors), errors


def test_a_commit_callback_that_raises_does_not_stop_the_others(
    journal: GroupCommitJournal, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Endpoint(journal)
    records = [_judged(endpoint, f"raising-{i}") for i in range(3)]

    async def main() -> list[int]:
        woken: list[int] = []
        finished = asyncio.Event()

        def done(index: int) -> None:
            woken.append(index)
            if index == 0:
                raise RuntimeError("a broken callback")
            if len(woken) == len(records):
                finished.set()

        for index, record in enumerate(records):
            journal.commit_soon(record, lambda _, index=index: done(index))
        await asyncio.wait_for(finished.wait(), 10)
        return woken

    assert asyncio.run(main()) == [0, 1, 2]
    assert "a commit callback failed" in caplog.text
    assert "a broken callback" in caplog.text


def test_the_base_commit_soon_waits_for_the_writer_thread(journal: GroupCommitJournal) -> None:
    """`Journal.commit_soon` as any journal gets it (through `append`'s future)."""
    record = _judged(Endpoint(journal), "base")

    async def main() -> tuple[bool, Exception | None, int]:
        loop_thread = threading.get_ident()
        called: list[tuple[bool, Exception | None]] = []
        finished = asyncio.Event()

        def done(error: Exception | None) -> None:
            called.append((threading.get_ident() == loop_thread, error))
            finished.set()

        Journal.commit_soon(journal, record, done)
        await asyncio.wait_for(finished.wait(), 10)
        return (*called[0], _stored_rows(journal, record.id))

    assert asyncio.run(main()) == (True, None, 1)


def test_endpoint_handle_soon_answers_once_committed_and_503_when_it_cannot_be(
    journal: GroupCommitJournal,
) -> None:
    endpoint = Endpoint(journal)

    async def statuses() -> list[int]:
        outcomes: list[int] = []
        finished = asyncio.Event()

        def answer(outcome: Outcome) -> None:
            outcomes.append(outcome.status)
            if len(outcomes) == 2:
                finished.set()

        endpoint.handle_soon(events_request(impression()), answer)
        endpoint.handle_soon(events_request({"not": "a batch"}), answer)
        await asyncio.wait_for(finished.wait(), 10)
        return outcomes

    assert sorted(asyncio.run(statuses())) == [204, 204]  # not strict: a bad batch gets 204
    assert [r.verdict for r in journal.requests()] == ["accepted", "rejected"]
    _refuse_inserts(journal)
    assert asyncio.run(statuses()) == [503, 503]
