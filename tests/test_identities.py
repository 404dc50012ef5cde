"""The history look-ups of a SQLite journal: the accepted events' identities held in memory
by each process writing the file (journal/identities.py) instead of a uuid index in it,
flagging exactly the duplicates the index did, across the processes sharing a file too."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from helpers import events_request, impression, one_transaction, post_batch, refuse_request

import mockserver.journal.sqlite as sqlite_journal
from mockserver import Endpoint, SqliteJournal
from mockserver.journal.identities import Identities, identity_hash, identity_hashes


def _event(uuid: str, visitor: str = "v") -> dict[str, Any]:
    batch = impression(visitor)
    event = batch["visitors"][0]["snapshots"][0]["events"][0]
    event["uuid"], event["timestamp"] = uuid, 1_760_000_000_000
    return batch


def _duplicate(endpoint: Endpoint, uuid: str) -> bool:
    return post_batch(endpoint, _event(uuid)).events[0].duplicate


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {name for (name,) in rows}


def test_a_written_file_has_no_uuid_index_and_a_reader_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    reader = SqliteJournal(path, shared=True)  # a new file gets the schema's index; a
    assert reader._identities is None  # reader (`export --db`) reads no identities
    reader.close()
    assert "events_identity" in _indexes(path)  # and changes nothing
    shared = SqliteJournal(path, shared=True)  # serve --workers' workers drop it
    post_batch(Endpoint(shared), _event("w"))  # with their first write
    shared.close()
    assert "events_identity" not in _indexes(path)
    with sqlite3.connect(path) as conn:  # as an older logx-mock left it
        conn.execute("CREATE INDEX events_identity ON events (uuid, entity_id, timestamp)")
    SqliteJournal(path).close()  # a file one process writes: dropped when it opens
    assert "events_identity" not in _indexes(path)


def test_duplicates_are_flagged_across_commits_and_after_the_file_is_opened_again(
    tmp_path: Path,
) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    assert not _duplicate(endpoint, "a")
    assert _duplicate(endpoint, "a")
    assert not _duplicate(endpoint, "b")
    journal.close()
    reopened = SqliteJournal(tmp_path / "j.db")  # read back from the table
    endpoint = Endpoint(reopened)
    assert _duplicate(endpoint, "a") and _duplicate(endpoint, "b")
    assert not _duplicate(endpoint, "c")
    reopened.close()
    shared = SqliteJournal(tmp_path / "j.db", shared=True)  # a shared writer reads them too
    assert _duplicate(Endpoint(shared), "c")
    shared.close()


def test_a_rejected_or_faulted_event_makes_no_history(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    bad = _event("r")
    del bad["account_id"]  # rejected in strict mode
    request = events_request(bad, ("x-optimizely-strict", "true"))
    assert endpoint.handle(request).status == 400
    assert not _duplicate(endpoint, "r")
    journal.close()


def test_a_resend_of_an_evicted_event_is_new_and_of_a_kept_one_a_duplicate(
    tmp_path: Path,
) -> None:
    journal = SqliteJournal(tmp_path / "j.db", max_requests=3)
    endpoint = Endpoint(journal)
    for uuid in ("e1", "e2", "e3", "e4"):  # e1's request is evicted
        assert not _duplicate(endpoint, uuid)
    assert not _duplicate(endpoint, "e1")  # as the table no longer holds it
    assert _duplicate(endpoint, "e4")
    journal.close()


def test_a_cleared_journal_forgets_every_identity(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    assert not _duplicate(endpoint, "x")
    journal.clear()
    assert not _duplicate(endpoint, "x")
    assert _duplicate(endpoint, "x")
    journal.close()


def test_a_rolled_back_transaction_takes_its_identities_and_its_clear_back(
    tmp_path: Path,
) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    assert not _duplicate(endpoint, "kept")  # request 1
    let_through = refuse_request(journal, 3)
    # One transaction: a clear, the event "lost" (request 2), then a request refused.
    failures: list[Exception] = []

    def clear() -> None:
        try:
            journal.clear()
        except Exception as exc:  # the transaction it joins is rolled back
            failures.append(exc)

    clearing = threading.Thread(target=clear)
    with one_transaction(journal):
        clearing.start()
        time.sleep(0.3)  # its job first (the writer waits for the turn with it)
        lost, refused = (
            journal.append(endpoint._judge(events_request(_event(uuid))))
            for uuid in ("lost", "other")
        )
    clearing.join(10)
    assert ["disk says no" in str(exc) for exc in failures] == [True]
    assert "disk says no" in str(refused.exception(timeout=10))
    assert "disk says no" in str(lost.exception(timeout=10))
    let_through()
    assert _duplicate(endpoint, "kept")  # the clear did not happen: it is still stored
    assert not _duplicate(endpoint, "lost")  # its insert did not happen either
    journal.close()


def test_a_hash_shared_by_two_identities_is_confirmed_in_the_rows(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    holder = post_batch(endpoint, _event("held")).id
    identities = journal._identities
    assert identities is not None
    # As if "forged"'s identity hashed like one request `holder` holds: a candidate only.
    identities.add(holder, ("7000", "forged", 1_760_000_000_000))
    identities.commit()
    assert identities.holder(("7000", "forged", 1_760_000_000_000)) == holder
    assert not _duplicate(endpoint, "forged")
    journal.close()


def test_identities_that_python_hashes_alike_as_numbers_stay_apart(tmp_path: Path) -> None:
    # hash(-1) == hash(-2), and hash(t) == hash(t + 2**61 - 1): held by value, the second
    # identity would take the first's entry and hide its duplicate.
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    for first, second in ((-1, -2), (1_760_000_000_000, 1_760_000_000_000 + 2**61 - 1)):
        uuid = f"u{first}"
        events = [_event(uuid) for _ in range(2)]
        for batch, stamp in zip(events, (first, second), strict=True):
            batch["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = stamp
            assert not post_batch(endpoint, batch).events[0].duplicate
        assert post_batch(endpoint, events[0]).events[0].duplicate  # the first, sent again
        assert post_batch(endpoint, events[1]).events[0].duplicate
    journal.close()


def test_a_file_opened_with_a_smaller_cap_holds_only_the_kept_identities(
    tmp_path: Path,
) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    for n in range(20):
        post_batch(endpoint, _event(f"k{n}"))
    journal.close()
    capped = SqliteJournal(tmp_path / "j.db", max_requests=5)
    endpoint = Endpoint(capped)
    assert not _duplicate(endpoint, "new")  # its commit evicts the 16 oldest
    assert capped._identities is not None and len(capped._identities) == 5
    assert not _duplicate(endpoint, "k3") and _duplicate(endpoint, "k19")
    capped.close()


def test_the_workers_parent_lets_its_identities_go_when_it_leaves_the_file(
    tmp_path: Path,
) -> None:
    parent = SqliteJournal(tmp_path / "j.db")
    post_batch(Endpoint(parent), _event("p"))
    parent.leave_checkpoints()  # serve --workers: its workers write the file from now on
    assert parent._identities is None
    parent.clear()  # its own writes (a clear, the fault plan) read none again
    assert parent._identities is None
    worker = SqliteJournal(tmp_path / "j.db", shared=True)
    post_batch(Endpoint(worker), _event("p"))
    assert _duplicate(Endpoint(worker), "p")
    worker.close()
    parent.close()
    assert "events_identity" not in _indexes(tmp_path / "j.db")


def test_identities_undo_a_rolled_back_transaction_and_go_with_their_newest_request() -> None:
    identities = Identities()
    identities.load([(1, "e", "u1", 5), (2, "e", "u2", 5), (3, "e", "u1", 5)])
    assert identities.holder(("e", "u1", 5)) == 3  # the newest request holding it
    identities.add(4, ("e", "u1", 5))
    identities.add(4, ("e", "u9", 5))
    identities.trim(2)
    assert identities.holder(("e", "u9", 5)) == 4  # seen within its own transaction
    assert identities.holder(("e", "u2", 5)) is None
    assert identities.abort()
    assert identities.holder(("e", "u1", 5)) == 3 and identities.holder(("e", "u9", 5)) is None
    assert identities.holder(("e", "u2", 5)) == 2  # the trim was undone too
    identities.trim(2)
    identities.commit()
    assert identities.holder(("e", "u2", 5)) is None  # its only request was evicted
    assert identities.holder(("e", "u1", 5)) == 3  # request 3 still holds it
    assert len(identities) == 1
    identities.trim(2)  # nothing more to let go
    assert len(identities) == 1 and identities.abort()
    identities.trim(3)  # an eviction another process made, found later
    identities.commit()
    assert len(identities) == 0
    identities.add(7, ("e", "u7", 5))
    identities.clear()
    assert identities.holder(("e", "u7", 5)) is None
    assert not identities.abort()  # a clear cannot be undone here: read the table again


def test_a_transaction_that_evicts_its_own_identities_gives_nothing_back_on_rollback() -> None:
    identities = Identities()
    identities.load([(1, "e", "old", 5)])
    identities.add(2, ("e", "a", 5))
    identities.add(3, ("e", "b", 5))
    identities.trim(2)  # a cap of one: request 2, added in this very transaction, goes
    assert identities.holder(("e", "a", 5)) is None
    assert identities.holder(("e", "b", 5)) == 3
    assert identities.abort()
    assert identities.holder(("e", "old", 5)) == 1  # as before the transaction
    assert identities.holder(("e", "a", 5)) is None and identities.holder(("e", "b", 5)) is None
    assert list(identities._ids) == [1] and list(identities._keys) == [identity_hash("e", "old", 5)]


def test_processes_sharing_a_file_flag_each_others_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = (SqliteJournal(path, shared=True) for _ in range(2))
    one, two = Endpoint(first), Endpoint(second)
    assert not _duplicate(one, "a")
    assert _duplicate(two, "a")  # its first write reads what the other stored
    assert not _duplicate(two, "b")
    assert _duplicate(one, "b")  # caught up with the other's rows since its last write
    assert _duplicate(one, "a") and _duplicate(two, "b")
    first.close()
    second.close()


def test_a_shared_writer_lets_go_of_what_another_process_evicted_or_cleared(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    first = SqliteJournal(path, shared=True, max_requests=3)  # evicts past 3
    second = SqliteJournal(path, shared=True)  # never evicts itself
    one, two = Endpoint(first), Endpoint(second)
    for n in range(6):
        post_batch(one, _event(f"k{n}"))
        post_batch(two, _event(f"s{n}"))  # catches up with k{n}
    assert not _duplicate(two, "k0")  # evicted by the other: a new event again
    assert _duplicate(two, "k5")
    held = second._identities
    assert held is not None and len(held) > _stored_identities(path)  # the evicted ones too
    for n in range(sqlite_journal._TRIM_EVERY):  # until it looks at the oldest id left
        post_batch(two, _event(f"t{n}"))
    assert len(held) == _stored_identities(path)
    first.clear()
    for n in range(sqlite_journal._TRIM_EVERY):
        post_batch(two, _event(f"c{n}"))
    assert len(held) == _stored_identities(path)
    assert not _duplicate(two, "k5")  # cleared by the other
    first.close()
    second.close()


def _stored_identities(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(DISTINCT uuid) FROM events WHERE verdict = 'accepted'"
        ).fetchone()
    return int(count)


def test_a_shared_writer_rolled_back_catches_up_again(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = (SqliteJournal(path, shared=True) for _ in range(2))
    one, two = Endpoint(first), Endpoint(second)
    assert not _duplicate(two, "start")
    assert not _duplicate(one, "x")  # request 2, which the second has not seen
    let_through = refuse_request(second, 3)
    refused = second.append(two._judge(events_request(_event("y"))))
    assert "disk says no" in str(refused.exception(timeout=10))  # its catch-up went with it
    let_through()
    assert _duplicate(two, "x")  # found again in the next transaction
    assert not _duplicate(two, "y")
    first.close()
    second.close()


def test_a_shared_writer_whose_begin_fails_reads_no_identity_twice(tmp_path: Path) -> None:
    # A write that fails before its transaction starts (BEGIN IMMEDIATE busy: a writer that
    # does not take the lock file, such as the sqlite3 shell) caught up with nothing: its
    # rollback must not take the writer back to where the transaction before it started, or
    # the next one reads that transaction's rows again: held twice, out of request-id order.
    path = tmp_path / "j.db"
    first, second = (SqliteJournal(path, shared=True) for _ in range(2))
    one, two = Endpoint(first), Endpoint(second)
    assert not _duplicate(one, "a")  # request 1
    assert not _duplicate(two, "b")  # request 2
    assert not _duplicate(one, "c")  # request 3, after catching up with request 2
    first._writer.execute("PRAGMA busy_timeout=0")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        request = events_request(_event("x"))
        assert one.handle(request).status == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert not _duplicate(one, "d")  # request 4
    held = first._identities
    assert held is not None
    assert list(held._ids) == [1, 2, 3, 4]
    first.close()
    second.close()


def test_a_commits_identities_added_together_are_undone_together() -> None:
    """`add_many`, as the writer adds a commit's: an identity twice in it (and one held
    before) ends on its last request, and a rollback brings back what each held before."""
    identities = Identities()
    identities.load([(1, "e", "u1", 5)])
    cells = [("e", "u1", 5), ("e", "u2", None), ("e", "u1", 5), ("é", "u3", -1)]
    hashes = identity_hashes(cells)
    assert hashes == [identity_hash(*one) for one in cells]
    assert identity_hash("e", "u", -1) != identity_hash("e", "u", -2)  # not by arithmetic
    assert identity_hash("e", "u", None) != identity_hash("e", "u", 0)
    assert identities.holders(hashes) == [1, None, 1, None]
    identities.add_many([2, 2, 3, 3], hashes)
    assert identities.holders(hashes) == [3, 2, 3, 3]
    assert identities.abort()
    assert identities.holders(hashes) == [1, None, 1, None]
    assert list(identities._ids) == [1] and len(identities) == 1
    identities.add_many([2, 2, 3, 3], hashes)
    identities.commit()
    identities.trim(2)  # request 2's u2 goes; u1 stays with request 3
    assert identities.holders(hashes) == [3, None, 3, 3]
    assert identities.abort()
    assert identities.holders(hashes) == [3, 2, 3, 3]
