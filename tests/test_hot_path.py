"""What the hot path does to go fast changes nothing anyone can see: a large batch is
judged with the cycle collector paused (and leaves it as it found it), judging makes no
reference cycles, and the stored metadata reads back the same whichever encoder wrote it."""

from __future__ import annotations

import copy
import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import conversion, impression
from sdk_traffic import SDK_BATCHES, sdk_batch

from contract_tests.corpus import near_limit_body
from mockserver import CoreRequest, Endpoint, Journal, MemoryJournal, SqliteJournal, flatten
from mockserver.batch import walk
from mockserver.journal.base import as_text
from mockserver.journal.filters import COLUMN_FILTERS, column_values, event_matches
from mockserver.journal.rows import EMPTY_META, META_FIELDS, event_row, event_rows, meta_text
from mockserver.request_lines import REQUEST_LOGGER
from mockserver.serve.server import YOUNG_COLLECTION_THRESHOLD
from mockserver.violations import Violation

HEADERS = [("content-type", "application/json"), ("x-optimizely-strict", "true")]


@pytest.fixture(params=["memory", "sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """Each journal kind, closed after the test."""
    opened = MemoryJournal() if request.param == "memory" else SqliteJournal(tmp_path / "j.db")
    yield opened
    opened.close()


def post(endpoint: Endpoint, body: bytes) -> int:
    request = CoreRequest("POST", "/v1/events", body, headers=HEADERS, peer="203.0.113.9")
    return endpoint.handle(request).status


@pytest.fixture
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


@pytest.mark.usefixtures("collector_restored")
def test_judging_makes_no_reference_cycles() -> None:
    endpoint = Endpoint(MemoryJournal())
    post(endpoint, json.dumps(impression()).encode())  # imports, caches: before counting
    gc.collect()
    gc.disable()
    for name in SDK_BATCHES:
        assert post(endpoint, json.dumps(sdk_batch(name)).encode()) in (204, 400)
    assert post(endpoint, near_limit_body()) == 204
    assert post(endpoint, b'{"visitors": [1, {"snapshots": "x"}]}') == 400
    assert gc.collect() == 0  # nothing was garbage only the cycle collector could free


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("enabled", [True, False])
def test_a_large_batch_leaves_the_collector_as_it_found_it(enabled: bool, tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        endpoint = Endpoint(journal)
        (gc.enable if enabled else gc.disable)()
        assert post(endpoint, near_limit_body()) == 204
        assert gc.isenabled() is enabled
        (record,) = journal.requests()
        assert record.verdict == "accepted" and len(record.events) > 1000
    finally:
        journal.close()


def test_stored_metadata_reads_back_the_same_from_either_encoder() -> None:
    endpoint = Endpoint(MemoryJournal())
    clean = impression()
    post(endpoint, json.dumps(clean).encode())
    rejected = impression()
    rejected["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = "soon"
    post(endpoint, json.dumps(rejected).encode())
    first, second = endpoint.journal.requests()
    assert not first.errors and second.errors
    for record in (first, second):
        text = meta_text(record)
        assert text.isascii()
        meta = json.loads(text)
        # The empty fields are left out: a clean request's fault, keys, source and reports.
        kept = [name for name in META_FIELDS if name not in EMPTY_META] + ["headers"]
        assert list(meta) == kept + (["errors"] if record.errors else [])
        assert all(meta[name] == getattr(record, name) for name in kept if name != "headers")
        assert meta["headers"] == [list(h) for h in record.headers]
        assert meta["received_at"] == record.received_at
        assert [Violation.from_dict(v) for v in meta.get("errors", [])] == record.errors
    # Non-ASCII header values and an infinite reported value keep json.dumps's spelling.
    first.headers = [("user-agent", "Zürich \ud800")]
    assert json.loads(meta_text(first))["headers"] == [["user-agent", "Zürich \ud800"]]
    second.errors = [Violation("x", "type", "m", "integer", float("inf"))]
    assert '"actual": Infinity' in meta_text(second)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        ("plain", "plain"),
        ("Zürich", "Zürich"),
        ("lone \ud800", "lone \ufffd\ufffd\ufffd"),  # its three bytes, each replaced
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (2.5, "2.5"),
    ],
)
def test_filter_cells_keep_their_text(value: object, text: str | None) -> None:
    assert as_text(value) == text


def test_serve_freezes_its_startup_heap_and_keeps_collecting_less_often() -> None:
    # In a process of its own: a frozen heap is for processes that serve until they end.
    code = (
        "import gc, mockserver.serve.serve_cli\n"
        "from mockserver.serve.server import freeze_startup_heap\n"
        "freeze_startup_heap()\n"
        "print(gc.get_freeze_count(), gc.isenabled(), gc.get_threshold()[0])\n"
        "young = lambda: gc.get_stats()[0]\n"
        "before = young()\n"
        "garbage = []\n"
        "garbage.append(garbage)\n"  # a cycle: only the collector frees it
        "del garbage\n"
        "kept = [[] for _ in range(1_000)]\n"  # past CPython's 700: no collection yet
        "print(young()['collections'] - before['collections'])\n"
        "kept += [[] for _ in range(60_000)]\n"  # past the threshold: one, which finds it
        "print(young()['collected'] - before['collected'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    frozen, enabled, threshold, early, collected = out.stdout.split()
    assert int(frozen) > 10_000 and enabled == "True"
    assert int(threshold) == YOUNG_COLLECTION_THRESHOLD and early == "0"
    assert int(collected) >= 1


@pytest.mark.parametrize(
    "payload",
    [
        *[sdk_batch(name) for name in sorted(SDK_BATCHES)],
        {"account_id": "1", "visitors": [1, "two", {"visitor_id": "v"}]},
        {"account_id": "1", "visitors": {"visitor_id": "v"}},
        {"account_id": "1"},
        [impression()],
    ],
)
def test_the_request_line_counts_visitors_as_the_walk_does(
    payload: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The line counts visitors without walking the batch again, and agrees with the walk."""
    caplog.set_level("INFO", logger=REQUEST_LOGGER)
    post(Endpoint(MemoryJournal()), json.dumps(payload).encode())
    (line,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert f": {len(walk(payload).visitors)} visitor(s)," in line.getMessage()
    assert line.verdict in ("accepted", "rejected", "malformed")  # type: ignore[attr-defined]


def test_the_stored_columns_are_the_filters_values() -> None:
    # column_values is written out for speed: it must still follow COLUMN_FILTERS' order
    # and what each filter compares (the datafile's key for a conversion sent without one).
    payload = impression()
    payload["visitors"][0]["snapshots"][0]["events"].append(
        {"entity_id": "9", "uuid": "c-1", "timestamp": 1, "key": ""}
    )
    events = flatten(payload, verdict="accepted")
    events[1].entity_key = "purchase"
    for event in events:
        cells = column_values(event)
        assert len(cells) == len(COLUMN_FILTERS)
        for name, cell in zip(COLUMN_FILTERS, cells, strict=True):
            assert cell is not None and event_matches(event, {name: cell}), (name, cell)
    assert column_values(events[1])[COLUMN_FILTERS.index("key")] == "purchase"


def test_the_duplicate_flag_reaches_sqlite_as_1_or_0() -> None:
    # sqlite3 binds an int directly but looks a bool up among its adapters first (~0.3 µs a
    # cell): the rows a journal inserts say 1 or 0, from compact cells or built records;
    # PostgreSQL's column is boolean, and its rows (`clean`) keep the bool.
    payload = impression()
    payload["visitors"].append(copy.deepcopy(payload["visitors"][0]))  # the same event twice
    request = CoreRequest(
        "POST", "/v1/events", json.dumps(payload).encode(), headers=HEADERS, peer="127.0.0.1"
    )
    record = Endpoint(MemoryJournal()).handle(request).record
    assert record is not None and record.compact is not None
    compact = [row[-1] for row in event_rows(record)]
    built = [row[-1] for row in map(event_row, record.events)]  # builds the records
    assert compact == built == [0, 1]
    assert {type(cell) for cell in compact + built} == {int}
    assert [event_row(e, clean=True)[-1] for e in record.events] == [False, True]
    assert {type(event_row(e, clean=True)[-1]) for e in record.events} == {bool}


def test_a_clean_batch_is_stored_without_building_its_records(journal: Journal) -> None:
    # The writer stores a clean batch's events from their cells; the records are built
    # only when read, and are then the ones the journal reads back.
    endpoint = Endpoint(journal)
    payload = impression()
    payload["visitors"] = [copy.deepcopy(payload["visitors"][0]) for _ in range(3)]
    for number, visitor in enumerate(payload["visitors"]):
        visitor["snapshots"][0]["events"][0]["uuid"] = f"uuid-{number}"
    request = CoreRequest(
        "POST", "/v1/events", json.dumps(payload).encode(), headers=HEADERS, peer="127.0.0.1"
    )
    record = endpoint.handle(request).record
    assert record is not None and record.verdict == "accepted"
    assert record.compact is not None and record.event_count == 3  # never built
    assert not record.payload_is_read  # stored, answered, logged: never decoded
    stored = journal.request(record.id)
    assert stored is not None and len(stored.events) == 3
    assert record.events == stored.events  # built now: the journal's own
    assert record.compact is None and {e.request_id for e in record.events} == {record.id}
    assert record.payload_is_read and record.payload == payload == stored.payload
    assert record.to_dict() == stored.to_dict()
    assert [e.index for e in journal.events()] == [0, 1, 2]


def test_history_warns_a_clean_batch_without_building_it(journal: Journal) -> None:
    # A duplicate and an early conversion are warned by path and flagged by index; the
    # records, built later, carry the flags, as the journal reads them back.
    endpoint = Endpoint(journal)
    first = impression("ann")
    batch = conversion(visitor_id="bob")
    batch["visitors"].insert(0, copy.deepcopy(first["visitors"][0]))
    bodies = [json.dumps(first).encode(), json.dumps(batch).encode()]
    for body in bodies:
        request = CoreRequest("POST", "/v1/events", body, headers=HEADERS, peer="127.0.0.1")
        record = endpoint.handle(request).record
    assert record is not None and record.compact is not None
    assert not record.payload_is_read
    assert [(w.rule, w.path) for w in record.warnings] == [
        ("duplicate_event", "visitors[0].snapshots[0].events[0].uuid"),
        ("conversion_before_decision", "visitors[1].snapshots[0].events[0]"),
    ]
    stored = journal.request(record.id)
    assert stored is not None
    assert [e.duplicate for e in stored.events] == [True, False]
    assert record.events == stored.events and record.warnings == stored.warnings
    assert [e.duplicate for e in journal.events(visitor_id="ann")] == [False, True]


def test_a_fault_rule_reads_a_clean_batchs_payload(journal: Journal) -> None:
    # A clean batch's payload is decoded only when read: a rule on its content reads it.
    endpoint = Endpoint(journal)
    endpoint.faults.add(status=503, visitor_id="vip")
    answers = []
    for visitor in ("someone", "vip"):
        body = json.dumps(impression(visitor)).encode()
        request = CoreRequest("POST", "/v1/events", body, headers=HEADERS, peer="127.0.0.1")
        outcome = endpoint.handle(request)
        assert outcome.record is not None and outcome.record.payload_is_read
        answers.append((outcome.status, outcome.record.verdict))
    assert answers == [(204, "accepted"), (503, "faulted")]
    assert [r.verdict for r in journal.requests()] == ["accepted", "faulted"]


REPORTED_VALUES = [None, "a68cf1ad", "Zürich", "lone \ud800", 7, 2**70, True, 2.5, 1e16, -0.0]
REPORTED_VALUES += [["a", 1], float("inf"), float("nan")]


@pytest.mark.parametrize("actual", REPORTED_VALUES)
def test_reported_metadata_reads_back_as_json_dumps_wrote_it(actual: object) -> None:
    """A reported request's meta (a duplicate's warning, a rejection's errors) is encoded
    in C when that reads back the same as json.dumps's text; an infinity or NaN (which
    msgspec writes as null) and containers keep json.dumps's spelling."""
    endpoint = Endpoint(MemoryJournal())
    body = json.dumps(impression()).encode()
    post(endpoint, body)
    post(endpoint, body)  # a duplicate: warned
    record = endpoint.journal.requests()[-1]
    assert [w.rule for w in record.warnings] == ["duplicate_event"]
    record.errors = [Violation("x", "type", "m", "integer", actual)]
    text = meta_text(record)
    assert text.isascii()
    meta = json.loads(text)
    assert {k: meta[k] for k in ("received_at", "strict")} == {
        "received_at": record.received_at,
        "strict": record.strict,
    }
    assert "fault" not in meta and record.fault is None  # empty: left out
    assert [Violation.from_dict(v) for v in meta["warnings"]] == record.warnings
    written = json.dumps([record.errors[0].to_dict()])
    assert json.dumps(meta["errors"]) == json.dumps(json.loads(written))
