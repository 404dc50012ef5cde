"""`logx-mock export` and `import`, and `GET /_mock/export` / `POST /_mock/import`: the
journal to NDJSON and back, over real sockets, SQLite files and PostgreSQL."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import impression
from journal_traffic import fill

from mockserver import Endpoint, SqliteJournal, ThreadedServer
from mockserver.serve.cli import main

IDS = ("id", "source_id")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def but_ids(line: dict[str, Any]) -> dict[str, Any]:
    """A line without the fields a new journal renumbers."""
    kept = {k: v for k, v in line.items() if k not in IDS}
    kept["events"] = [{k: v for k, v in e.items() if k != "request_id"} for e in line["events"]]
    return kept


@pytest.fixture
def filled() -> Any:
    with ThreadedServer() as server:
        statuses = fill(server)
        yield server, statuses


def test_round_trip_through_sqlite_is_equal_but_ids(
    filled: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, _ = filled
    first, second, db = tmp_path / "a.ndjson", tmp_path / "b.ndjson", tmp_path / "j.db"
    assert main(["export", "--url", server.url, "-o", str(first)]) == 0
    assert main(["import", str(first), "--db", str(db)]) == 0
    assert "imported 14 request(s)" in capsys.readouterr().err
    assert main(["export", "--db", str(db), "-o", str(second)]) == 0
    exported, again = lines(first), lines(second)
    assert len(exported) == len(again) == 14
    assert [but_ids(x) for x in exported] == [but_ids(x) for x in again]
    assert [x["source_id"] for x in again] == [x["id"] for x in exported]
    assert all(x["source_id"] is None for x in exported)


def test_round_trip_through_postgresql_and_a_server(
    filled: Any, tmp_path: Path, pg_url: str
) -> None:
    server, _ = filled
    first, second, third = (tmp_path / f"{n}.ndjson" for n in "abc")
    assert main(["export", "--url", server.url, "-o", str(first)]) == 0
    assert main(["import", str(first), "--db", pg_url]) == 0
    assert main(["export", "--db", pg_url, "-o", str(second)]) == 0
    with ThreadedServer() as other:
        assert main(["import", str(second), "--url", other.url]) == 0
        assert main(["export", "--url", other.url, "-o", str(third)]) == 0
    assert [but_ids(x) for x in lines(first)] == [but_ids(x) for x in lines(third)]
    assert [x["source_id"] for x in lines(third)] == [x["id"] for x in lines(second)]


def test_each_line_holds_the_body_as_sent_and_the_verdict(filled: Any, tmp_path: Path) -> None:
    server, statuses = filled
    out = tmp_path / "a.ndjson"
    assert main(["export", "--url", server.url, "-o", str(out)]) == 0
    by_visitor = {}
    for line in lines(out):
        if line["body"] and line["body"]["visitors"]:
            by_visitor[line["body"]["visitors"][0]["visitor_id"]] = line
    assert by_visitor["alice"]["verdict"] == "accepted" and by_visitor["alice"]["status"] == 204
    assert by_visitor["\ud800-eve"]["events"][0]["visitor_id"] == "\ud800-eve"
    assert by_visitor["dave"]["body_base64"] is None  # gzip: the JSON it decoded to
    raw = {base64.b64decode(x["body_base64"]) for x in lines(out) if x["body_base64"]}
    assert raw == {b'{"visitors": [1,', b"\xff\xfe{}", b"[1, 2]"}
    (big,) = [x for x in lines(out) if x["verdict"] == "too_large"]
    assert big["body"] is None and big["body_base64"] is None and big["status"] == 413
    (faulted,) = [x for x in lines(out) if x["verdict"] == "faulted"]
    assert faulted["fault"] == {
        "rule": 1,
        "kind": "status",
        "status": 503,
        "seed": faulted["fault"]["seed"],
    }
    assert sorted(x["status"] for x in lines(out)) == sorted(statuses.values())


def test_history_warnings_come_once_and_duplicates_stay_flagged(
    filled: Any, tmp_path: Path
) -> None:
    server, _ = filled
    out = tmp_path / "a.ndjson"
    assert main(["export", "--url", server.url, "--visitor-id", "dup-visitor", "-o", str(out)]) == 0
    with ThreadedServer() as other:
        assert main(["import", str(out), "--url", other.url]) == 0
        second = other.endpoint.journal.requests()
        assert [len(r.warnings) for r in second] == [0, 1]
        assert [r.warnings[0].rule for r in second[1:]] == ["duplicate_event"]
        assert [r.events[0].duplicate for r in second] == [False, True]
        # An imported request still makes history: the same batch sent live is a duplicate.
        requests.post(other.events_url, json=lines(out)[0]["body"], timeout=10)
        live = other.endpoint.journal.request(3)
    assert live is not None and live.source_id is None and live.events[0].duplicate
    assert [w.rule for w in live.warnings] == ["duplicate_event"]


def test_import_refuses_a_file_that_is_not_an_export_and_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    good = json.dumps(_line())
    cases = {
        "not json": (f"{good}\n{{oops\n", "line 2: not JSON"),
        "events": (
            json.dumps({"request_id": 1, "kind": "impression"}),
            "line 1: not a request: 'id' is a required property",
        ),
        "type": (json.dumps(_line(status="204")), "line 1: $.status must be integer, got string"),
        "verdict": (
            json.dumps(_line(verdict="fine")),
            "line 1: $.verdict is 'fine'; use accepted, rejected",
        ),
        "both": (
            json.dumps(_line(body_base64="e30=")),
            "line 1: has both 'body' and 'body_base64'",
        ),
        "base64": (
            json.dumps(_line(body=None, body_base64="%%%")),
            "line 1: $.body_base64 is '%%%', which does not match",
        ),
        "header": (json.dumps(_line(headers=[["a", "b\r\nX: y"]])), "line 1: $.headers[0][1]"),
        "array": (f"{good}\n\n[1]\n", "line 3: a request is a JSON object, not array"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.ndjson"
        path.write_text(text)
        assert main(["import", str(path), "--db", str(db)]) == 2, name
        err = capsys.readouterr().err
        assert f"{path}: {message}" in err and err.rstrip().endswith("nothing was imported"), err
    assert not db.exists()


def test_import_of_a_missing_file_and_export_of_a_missing_journal_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tmp_path / "none.ndjson"), "--db", str(tmp_path / "j.db")]) == 2
    assert "cannot read" in capsys.readouterr().err
    out = tmp_path / "out.ndjson"
    assert main(["export", "--db", str(tmp_path / "none.db"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "there is no journal at" in err and "logx-mock serve --db" in err
    assert not out.exists() and not (tmp_path / "none.db").exists()
    assert main(["export", "--url", "http://127.0.0.1:9", "-o", str(out)]) == 2
    assert "is `logx-mock serve` running there?" in capsys.readouterr().err
    assert not out.exists() and not Path(str(out) + ".part").exists()


def test_export_reads_the_file_of_a_running_server(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    journal = SqliteJournal(db)
    with ThreadedServer(Endpoint(journal)) as server:
        for visitor in ("a", "b", "c"):
            requests.post(server.events_url, json=impression(visitor), timeout=10)
        out = tmp_path / "a.ndjson"
        assert main(["export", "--db", str(db), "--after", "1", "-o", str(out)]) == 0
    journal.close()
    assert [x["body"]["visitors"][0]["visitor_id"] for x in lines(out)] == ["b", "c"]


def test_admin_export_streams_a_download_with_filters(filled: Any) -> None:
    server, _ = filled
    answer = requests.get(server.url + "/_mock/export", params={"verdict": "malformed"}, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    assert answer.headers["content-disposition"] == 'attachment; filename="logx-mock-export.ndjson"'
    assert answer.headers.get("transfer-encoding") == "chunked"
    got = [json.loads(line) for line in answer.text.splitlines()]
    assert [x["verdict"] for x in got] == ["malformed"] * 3  # no events, still selected
    alice = requests.get(
        server.url + "/_mock/export",
        params={"visitor_id": "alice", "kind": "conversion"},
        timeout=10,
    )
    assert [json.loads(x)["id"] for x in alice.text.splitlines()] == [2]
    har = requests.get(server.url + "/_mock/export?format=har&after=13", timeout=10)
    assert har.headers["content-disposition"] == 'attachment; filename="logx-mock-export.har"'
    assert [e["_logx_mock"]["id"] for e in har.json()["log"]["entries"]] == [14]


def test_admin_export_refuses_bad_queries(filled: Any) -> None:
    server, _ = filled
    for params, words in (
        ({"format": "csv"}, "format='csv' is not an export format; use ndjson or har"),
        ({"visitor": "x"}, "unknown query parameter(s) visitor"),
        ({"after": "-1"}, "after=-1 is out of range"),
    ):
        answer = requests.get(server.url + "/_mock/export", params=params, timeout=10)
        assert answer.status_code == 400 and words in answer.json()["detail"], answer.text


def test_admin_import_checks_every_request_before_journaling_any() -> None:
    with ThreadedServer() as server:
        url = server.url + "/_mock/import"
        body = {"requests": [_line(), _line(status="x")]}
        answer = requests.post(url, json=body, timeout=10)
        assert answer.status_code == 400
        assert answer.json()["detail"] == (
            "request 2 of the body: $.status must be integer, got string; nothing was imported"
        )
        assert server.endpoint.journal.last_id == 0
        for bad in (b"nope", b"[]", b'{"requests": 1}'):
            answer = requests.post(
                url, data=bad, headers={"content-type": "application/json"}, timeout=10
            )
            assert answer.status_code == 400, bad
        answer = requests.post(url, json={"requests": [_line(), _line()]}, timeout=10)
        assert answer.json() == {"imported": 2, "first_id": 1, "last_id": 2}
        stored = server.endpoint.journal.request(2)
        assert (
            stored is not None and stored.source_id == 7 and stored.received_at == 1_700_000_000.5
        )


def test_import_keeps_keys_whose_paths_resolve_nothing() -> None:
    # The export's schema lets a key's path be any text; one no position has is kept as
    # it came and resolves no event's key, as before paths were parsed back.
    keys = {"visitors[0].snapshots[0].events[0].entity_id": "purchase", "\x17\x96": "odd"}
    with ThreadedServer() as server:
        url = server.url + "/_mock/import"
        answer = requests.post(url, json={"requests": [_line(keys=keys)]}, timeout=10)
        assert answer.json() == {"imported": 1, "first_id": 1, "last_id": 1}, answer.text
        stored = server.endpoint.journal.request(1)
        assert stored is not None and stored.keys == keys
        assert [event.entity_key for event in stored.events] == ["purchase"]


def test_a_journaled_path_with_spaces_and_control_characters_round_trips() -> None:
    # The server journals the percent-decoded path; the export's schema must take back
    # whatever it journaled (schemathesis found "\x1f", whitespace to Python's regex only).
    with ThreadedServer() as source, ThreadedServer() as target:
        sent = requests.post(source.url + "/v1/a%20b%1Fc", json={}, timeout=10)
        assert sent.status_code == 404
        exported = requests.get(source.url + "/_mock/export", timeout=10)
        line = json.loads(exported.text.splitlines()[0])
        assert line["path"] == "/v1/a b\x1fc" and line["verdict"] == "not_found"
        answer = requests.post(target.url + "/_mock/import", json={"requests": [line]}, timeout=10)
        assert answer.json() == {"imported": 1, "first_id": 1, "last_id": 1}, answer.text
        stored = target.endpoint.journal.request(1)
        assert stored is not None and stored.path == "/v1/a b\x1fc"


def _line(**changes: Any) -> dict[str, Any]:
    """One export line of an accepted impression, with `changes`."""
    return {
        "id": 7,
        "received_at": 1_700_000_000.5,
        "method": "POST",
        "path": "/v1/events",
        "host": "127.0.0.1:8080",
        "headers": [["content-type", "application/json"]],
        "client_ip": "127.0.0.0",
        "strict": False,
        "strict_header": None,
        "status": 204,
        "verdict": "accepted",
        "errors": [],
        "warnings": [],
        "unknown_fields": [],
        "fault": None,
        "keys": {},
        "body": impression("zoe"),
        "body_base64": None,
        "events": [],
        **changes,
    }


def test_an_export_stops_at_the_newest_request_when_it_began_and_holds_no_one_up() -> None:
    import httpx

    from mockserver import MemoryJournal

    journal = MemoryJournal()
    with ThreadedServer(Endpoint(journal)) as server:
        batch = impression("many")
        for _ in range(2000):
            requests.post(server.events_url, json=batch, timeout=10)
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", server.url + "/_mock/export") as export,
        ):
            chunks = export.iter_raw()
            first = next(chunks)  # of some 2.6 MB, sent 64 KB at a time
            # The reader pauses mid-stream: the server goes on answering everyone else.
            assert client.get(server.url + "/_mock/health").json()["last_id"] == 2000
            assert requests.post(server.events_url, json=batch, timeout=10).status_code == 204
            rest = b"".join(chunks)
        lines = (first + rest).splitlines()
    assert len(lines) == 2000 and json.loads(lines[-1])["id"] == 2000
