"""Read amplification: every admin answer is bounded by size as well as count.

Every event of a visitor carries the visitor's attributes and the snapshot's decisions
again, so one 183 KB batch once made `GET /_mock/events?limit=100000` answer 201 MB and a
3.5 MB batch worked out to ~66 GB (a `MemoryError` first). Each attack below is sent to a
real `logx-mock serve` on 127.0.0.1; each answer must come within `ANSWER_WITHIN` seconds
and hold at most `ANSWER_BYTES` beyond its first item, say that it stopped (`truncated`),
and say where to go on from, so paging still reads every event exactly once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ServeProcess
from helpers import impression, rss_mib

from mockserver import Endpoint, MemoryJournal, SqliteJournal
from mockserver.journal.base import Journal
from mockserver.journal.results import MAX_TABLE_CELLS
from mockserver.model import CoreRequest, EventRecord
from mockserver.web.admin.answers import ANSWER_BYTES, encode_items

ANSWER_WITHIN = 30.0
BATCH_LIMIT = 3_500_000  # the Log Endpoint's (decompressed) body limit


def amplifier(attribute_bytes: int, events: int, *, tiny: bool = False) -> dict[str, Any]:
    """One visitor with one attribute of `attribute_bytes`, and `events` events in one
    snapshot (`tiny`: `{}` each, the fewest bytes an event can take; the batch is then
    rejected, and journaled with its events all the same)."""
    batch = impression("amplifier")
    visitor = batch["visitors"][0]
    visitor["attributes"][0]["value"] = "a" * attribute_bytes
    snapshot = visitor["snapshots"][0]
    template = snapshot["events"][0]
    snapshot["events"] = [{} if tiny else {**template, "uuid": f"u{i}"} for i in range(events)]
    return batch


def post(server: ServeProcess, batch: dict[str, Any]) -> None:
    body = json.dumps(batch, separators=(",", ":")).encode()
    assert len(body) <= BATCH_LIMIT, len(body)
    response = requests.post(
        server.events_url,
        data=body,
        headers={"content-type": "application/json"},
        timeout=ANSWER_WITHIN,
    )
    assert response.status_code in (204, 400), response.text[:300]


def get(server: ServeProcess, path: str, **params: Any) -> requests.Response:
    response = requests.get(server.url + path, params=params, timeout=ANSWER_WITHIN)
    assert response.status_code == 200, response.text[:300]
    return response


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    db = tmp_path_factory.mktemp("read-bounds") / "journal.db"
    process = ServeProcess("--db", str(db))
    yield process
    code, log = process.stop()
    assert code == 0, log
    assert "Traceback" not in log


@pytest.fixture
def clean(server: ServeProcess) -> ServeProcess:
    assert requests.delete(server.url + "/_mock/requests", timeout=60).status_code == 204
    return server


def test_a_183_kb_batch_no_longer_answers_201_mb_and_pages_through_every_event(
    clean: ServeProcess,
) -> None:
    """The issue's batch shape (one big attribute, 2,000 tiny events), with a 20 KB
    attribute so that paging through all of it stays quick: 40 MB of events in all."""
    post(clean, amplifier(20_000, 2_000))
    seen: list[tuple[int, int]] = []
    params: dict[str, Any] = {"limit": 100_000}
    pages = 0
    while True:
        response = get(clean, "/_mock/events", **params)
        body = response.json()
        pages += 1
        assert len(response.content) <= ANSWER_BYTES + 30_000
        for event in body["events"]:
            assert event["attributes"] == {"plan": "a" * 20_000}
            assert event["decisions"][0]["experiment_id"] == "111127"
        seen += [(e["request_id"], e["index"]) for e in body["events"]]
        if not body["truncated"]:
            break
        assert body["next"] == {"after": seen[-1][0], "after_index": seen[-1][1]}
        params = {"limit": 100_000, **body["next"]}
    assert pages >= 5  # 40 MB in pages of at most 8 MiB
    assert len(seen) == len(set(seen)) == 2_000
    assert [index for _, index in seen] == list(range(2_000))


def test_a_3_5_mb_batch_answers_within_the_bound_everywhere(clean: ServeProcess) -> None:
    """The ~66 GB case: a 3 MB attribute shared by 150,000 events in one batch. Every
    read path answers in time, within the bound, and says what it left off."""
    post(clean, amplifier(3_000_000, 150_000, tiny=True))
    bound = ANSWER_BYTES + 3 * 3_100_000  # the bound, plus one event whole

    events = get(clean, "/_mock/events", limit=100_000)
    assert len(events.content) <= bound
    body = events.json()
    assert body["truncated"] is True and 1 <= len(body["events"]) <= 3

    listed = get(clean, "/_mock/requests", events="true", limit=1000)
    assert len(listed.content) <= bound
    (record,) = listed.json()["requests"]
    assert listed.json()["truncated"] is True
    assert record["event_count"] == 150_000
    assert record["events_left_off"] == 150_000 - len(record["events"])

    one = get(clean, f"/_mock/requests/{record['id']}")
    assert len(one.content) <= bound
    assert one.json()["events_left_off"] == record["events_left_off"]

    assert get(clean, "/_mock/health").json()["status"] == "ok"
    assert rss_mib(clean.proc.pid) < 1_000  # it ended in MemoryError before


def test_the_server_answers_others_while_big_answers_are_made(clean: ServeProcess) -> None:
    """Encoding runs off the event loop: health answers while five big reads run."""
    post(clean, amplifier(1_000_000, 5_000, tiny=True))
    errors: list[BaseException] = []

    def big_read() -> None:
        try:
            get(clean, "/_mock/events", limit=100_000)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=big_read) for _ in range(5)]
    for reader in readers:
        reader.start()
    for _ in range(20):
        assert requests.get(clean.url + "/_mock/health", timeout=10).status_code == 200
    for reader in readers:
        reader.join(ANSWER_WITHIN)
    assert not errors


def test_the_results_table_is_capped(clean: ServeProcess) -> None:
    """2,000 made-up variation ids times 2,000 event keys made a table of 4 million
    cells; it stops at MAX_TABLE_CELLS and says so."""
    batch = impression("v0")
    template = batch["visitors"][0]
    visitors = []
    for i in range(2_000):
        visitor = json.loads(json.dumps(template))
        visitor["visitor_id"] = f"v{i}"
        decision = visitor["snapshots"][0]["decisions"][0]
        decision["variation_id"] = str(1_000_000 + i)
        del decision["metadata"]["variation_key"]
        visitor["snapshots"][0]["events"][0]["uuid"] = f"i{i}"
        visitors.append(visitor)
    converter = json.loads(json.dumps(template))
    converter["visitor_id"] = "v0"
    snapshot = converter["snapshots"][0]
    later = snapshot["events"][0]["timestamp"] + 1
    snapshot["decisions"] = []
    snapshot["events"] = [
        {"entity_id": str(9_000 + k), "key": f"k{k}", "uuid": f"c{k}", "timestamp": later}
        for k in range(2_000)
    ]
    batch["visitors"] = [*visitors, converter]
    post(clean, batch)
    response = get(clean, "/_mock/results")
    body = response.json()
    assert body["truncated"] is True
    (experiment,) = body["experiments"]
    assert experiment["partial"] is True
    cells = sum(1 + len(v["events"]) for v in experiment["variations"])
    assert 0 < cells <= MAX_TABLE_CELLS
    assert len(response.content) <= ANSWER_BYTES


def test_a_listing_stops_at_the_bound() -> None:
    items = [{"x": "y" * 1_000_000} for _ in range(20)]
    body = json.loads(encode_items("rules", items, {}))
    assert body["truncated"] is True
    assert 1 <= len(body["rules"]) <= ANSWER_BYTES // 1_000_000
    assert json.loads(encode_items("rules", items[:2], {})) == {
        "rules": items[:2],
    }


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_events_resume_inside_a_request(kind: str, tmp_path: Path) -> None:
    journal: Journal = MemoryJournal() if kind == "memory" else SqliteJournal(tmp_path / "j.db")
    endpoint = Endpoint(journal)
    try:
        for visitor in ("a", "b"):
            batch = amplifier(10, 5)
            batch["visitors"][0]["visitor_id"] = visitor
            endpoint.handle(CoreRequest("POST", "/v1/events", json.dumps(batch).encode()))

        def ids(found: list[EventRecord]) -> list[tuple[int, int]]:
            return [(e.request_id, e.index) for e in found]

        assert ids(journal.events(after=1, after_index=2, limit=4)) == [
            (1, 3),
            (1, 4),
            (2, 0),
            (2, 1),
        ]
        assert ids(journal.events(after=1, after_index=4)) == [(2, i) for i in range(5)]
        # a decision filter compares every event in turn: it resumes the same way
        assert ids(journal.events(after=1, after_index=2, limit=3, experiment_id="111127")) == [
            (1, 3),
            (1, 4),
            (2, 0),
        ]
        assert ids(journal.events(after=0, after_index=0, visitor_id="b")) == [
            (2, i) for i in range(5)
        ]
    finally:
        journal.close()
