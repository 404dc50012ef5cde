"""Memory stays bounded under the attacks that grew it without end: history indexes that never
forgot (`--max-requests`), an address cache keyed on whatever `X-Forwarded-For` said, and
datafile revisions uploaded in a loop. Each attack runs against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import requests
from helpers import DATAFILE, conversion, impression, rss_mib

from mockserver import Endpoint, MemoryJournal, SqliteJournal, ThreadedServer
from mockserver.contract.datafile import MAX_REVISIONS


def batch_of(events: int, visitor: str = "v") -> dict[str, Any]:
    """One visitor, one snapshot, `events` impressions with fresh uuids."""
    batch = impression(visitor)
    snapshot = batch["visitors"][0]["snapshots"][0]
    template = snapshot["events"][0]
    snapshot["events"] = [{**template, "uuid": str(uuid.uuid4())} for _ in range(events)]
    return batch


def test_history_indexes_evict_with_a_capped_memory_journal() -> None:
    """37 -> 465 MB with --max-requests 10 over 2M events: the duplicate and impression
    indexes kept every event ever accepted. Now they hold what the journal holds."""
    journal = MemoryJournal(max_requests=10)
    with ThreadedServer(Endpoint(journal)) as server, requests.Session() as session:
        for i in range(200):
            response = session.post(server.events_url, json=batch_of(500, f"v{i}"), timeout=30)
            assert response.status_code == 204
        retained = sum(len(r.events) for r in journal.requests(limit=100))
        assert retained == 10 * 500
        history = journal._history
        assert len(history._keys) == retained  # 100,000 were accepted
        assert sorted(history._impressions) == [f"v{i}" for i in range(190, 200)]


def _flags(journal: Any, batches: list[dict[str, Any]]) -> list[list[bool]]:
    endpoint = Endpoint(journal)
    from mockserver.model import CoreRequest

    flags = []
    for batch in batches:
        outcome = endpoint.handle(CoreRequest("POST", "/v1/events", json.dumps(batch).encode()))
        assert outcome.record is not None
        flags.append([e.duplicate for e in outcome.record.events])
    return flags


def test_duplicate_flags_agree_with_sqlite_under_retention(tmp_path: Path) -> None:
    """The same traffic into both journals with --max-requests 3: an event resent while its
    first copy is retained is a duplicate, resent after that copy was evicted it is not
    (SQLite forgot it with its row; the memory journal forgot it too)."""
    a, b, c, d, e, f, g = (impression(v) for v in "abcdefg")
    batches = [a, b, a, c, d, a, e, f, g, a, conversion(visitor_id="g")]
    memory = _flags(MemoryJournal(max_requests=3), batches)
    sqlite = SqliteJournal(tmp_path / "j.db", max_requests=3)
    try:
        assert _flags(sqlite, batches) == memory
    finally:
        sqlite.close()
    assert [flags[0] for flags in memory] == [False, False, True, False, False, True] + [False] * 5


def test_distinct_forwarded_for_headers_do_not_grow_the_server(serve: Any, tmp_path: Path) -> None:
    """The address cache was keyed on the raw X-Forwarded-For text: 4,096 distinct 60 KB
    headers took 37 -> 273 MB. It is keyed on the parsed address now."""
    server = serve("--db", str(tmp_path / "j.db"), "--trust-proxy", "127.0.0.1/32")
    body = json.dumps(impression()).encode()
    headers = {"Content-Type": "application/json"}
    with requests.Session() as session:
        session.post(server.events_url, data=body, headers=headers, timeout=30)
        before = rss_mib(server.proc.pid)
        for i in range(1_000):
            chain = f"198.51.100.{i % 250}, " + "garbage-hop, " * 4_600 + f"{i}"
            headers["X-Forwarded-For"] = chain[:60_000]
            assert session.post(server.events_url, data=body, headers=headers, timeout=30).ok
        grown = rss_mib(server.proc.pid) - before
    assert grown < 30, f"RSS grew {grown:.0f} MiB over 1,000 distinct 60 KB headers (~60 MB)"


def _big_datafile(revision: int) -> bytes:
    """The test project with 3,000 extra events: about 600 KB of JSON, many index entries."""
    data = json.loads(DATAFILE.read_text())
    data["revision"] = str(revision)
    extra = [{"id": f"9{n:06d}", "key": f"event_{n}", "experimentIds": []} for n in range(3_000)]
    data["events"] = data["events"] + extra
    return json.dumps(data).encode()


def test_uploading_revisions_in_a_loop_keeps_a_few(serve: Any) -> None:
    """12 uploaded revisions took 1.46 GB: every one was kept. The newest few are kept now."""
    server = serve("--memory")
    url = server.url + "/_mock/datafiles"
    json_type = {"Content-Type": "application/json"}
    for revision in range(1, 13):
        added = requests.post(url, data=_big_datafile(revision), headers=json_type, timeout=30)
        assert added.status_code == 201
    kept = requests.get(url, timeout=10).json()["datafiles"]
    assert [d["revision"] for d in kept] == [str(r) for r in range(13 - MAX_REVISIONS, 13)]
