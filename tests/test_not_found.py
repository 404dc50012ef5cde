"""A wrong path or a refused method leaves a trace: verdict `not_found`, everywhere.

Before, `POST /v1/event` got a clear 404 and appeared nowhere (issue #14, item 3).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers import impression

from mockserver import REFUSED, VERDICTS, Endpoint, MemoryJournal, ThreadedServer
from mockserver.endpoint import recorded_answer
from pytest_plugin import LogxHandle


def journal(server: ThreadedServer, **params: str) -> list[dict]:
    response = requests.get(server.url + "/_mock/requests", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["requests"]


def test_a_wrong_path_is_answered_404_and_journaled(sqlite_server: ThreadedServer) -> None:
    batch = json.dumps(impression()).encode()
    response = requests.post(
        sqlite_server.url + "/v1/event",
        data=batch,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:logx-mock:problem:not_found"
    assert (problem["method"], problem["path"]) == ("POST", "/v1/event")
    assert "post batches to /v1/events" in problem["detail"]
    (record,) = journal(sqlite_server)
    assert problem["request_id"] == record["id"]
    assert (record["status"], record["verdict"], record["method"], record["path"]) == (
        404,
        "not_found",
        "POST",
        "/v1/event",
    )
    assert [(e["path"], e["rule"], e["expected"], e["actual"]) for e in record["errors"]] == [
        ("$", "path", "/v1/events", "/v1/event")
    ]
    assert record["event_count"] == 0
    assert record["raw"] == batch.decode()  # what was sent, to see on the page


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_a_refused_method_is_answered_405_and_journaled(
    sqlite_server: ThreadedServer, method: str
) -> None:
    response = requests.request(method, sqlite_server.events_url, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    problem = response.json()
    assert problem["type"] == "urn:logx-mock:problem:method"
    assert (problem["method"], problem["path"]) == (method, "/v1/events")
    assert f"{method} is not allowed; send POST /v1/events" == problem["detail"]
    (record,) = journal(sqlite_server)
    assert (record["status"], record["verdict"], record["errors"][0]["rule"]) == (
        405,
        "not_found",
        "method",
    )


def test_not_found_filters_lists_and_counts_nothing_as_events(
    sqlite_server: ThreadedServer,
) -> None:
    requests.post(sqlite_server.events_url, json=impression(), timeout=10)
    requests.post(sqlite_server.url + "/v2/events", json=impression(), timeout=10)
    assert [r["path"] for r in journal(sqlite_server, verdict="not_found")] == ["/v2/events"]
    assert [r["verdict"] for r in journal(sqlite_server, verdict="accepted")] == ["accepted"]
    events = requests.get(
        sqlite_server.url + "/_mock/events", params={"verdict": "not_found"}, timeout=10
    )
    assert (events.status_code, events.json()["events"]) == (200, [])
    document = requests.get(sqlite_server.url + "/_mock/openapi.json", timeout=10).json()
    enums = [
        p["schema"]["enum"]
        for op in document["paths"]["/_mock/requests"].values()
        for p in op.get("parameters", [])
        if p["name"] == "verdict"
    ]
    assert enums == [list(VERDICTS)]
    assert "not_found" in VERDICTS


@pytest.mark.parametrize(
    "path", ["/favicon.ico", "/robots.txt", "/.well-known/appspecific/com.chrome.devtools.json"]
)
def test_what_browsers_ask_for_by_themselves_is_answered_but_not_journaled(
    sqlite_server: ThreadedServer, path: str
) -> None:
    response = requests.get(sqlite_server.url + path, timeout=10)
    assert response.status_code == 404
    assert response.json()["path"] == path
    assert "request_id" not in response.json()
    assert journal(sqlite_server) == []
    posted = requests.post(sqlite_server.url + path, json=impression(), timeout=10)
    assert posted.status_code == 404  # a client posting there is a mistake: journaled
    assert [r["path"] for r in journal(sqlite_server)] == [path]


def test_admin_and_datafile_paths_are_not_journaled(sqlite_server: ThreadedServer) -> None:
    assert requests.get(sqlite_server.url + "/_mock/nope", timeout=10).status_code == 404
    assert requests.get(sqlite_server.url + "/datafiles/nope.json", timeout=10).status_code in (
        403,
        404,
    )
    assert journal(sqlite_server) == []


def test_a_not_found_request_uses_up_no_fault_rule(sqlite_server: ThreadedServer) -> None:
    added = requests.post(
        sqlite_server.url + "/_mock/faults", json={"status": 503, "times": 1}, timeout=10
    )
    assert added.status_code in (200, 201), added.text
    assert requests.post(sqlite_server.url + "/v1/event", json={}, timeout=10).status_code == 404
    faulted = requests.post(sqlite_server.events_url, json=impression(), timeout=10)
    assert faulted.status_code == 503
    (stray, attempt) = journal(sqlite_server)
    assert (stray["verdict"], stray["fault"]) == ("not_found", None)
    assert attempt["verdict"] == "faulted"


def test_the_recorded_answer_is_the_problem_it_got(sqlite_server: ThreadedServer) -> None:
    sent = requests.get(sqlite_server.events_url, headers={"origin": "https://a.example"})
    (record,) = sqlite_server.endpoint.journal.requests()
    answer = recorded_answer(record)
    assert answer.status == sent.status_code == 405
    assert json.loads(answer.body) == sent.json()
    for name, value in answer.headers:
        assert sent.headers[name] == value
    har = requests.get(sqlite_server.url + "/_mock/export", params={"format": "har"}, timeout=10)
    (entry,) = har.json()["log"]["entries"]
    assert entry["response"]["status"] == 405
    assert json.loads(entry["response"]["content"]["text"]) == sent.json()


def test_check_fails_on_it_naming_where_it_went(sqlite_server: ThreadedServer) -> None:
    requests.post(sqlite_server.url + "/v1/event", json=impression(), timeout=10)
    checked = subprocess.run(
        [sys.executable, "-m", "mockserver", "check", "--url", sqlite_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1, checked.stderr
    assert "#1 unknown client: not_found, POST /v1/event" in checked.stdout
    assert "/v1/event is not served; post batches to /v1/events" in checked.stdout


def test_assert_no_rejections_lists_a_wrong_path() -> None:
    endpoint = Endpoint(MemoryJournal())
    with ThreadedServer(endpoint) as server:
        requests.post(server.url + "/v1/event", json=impression(), timeout=10)
    assert "not_found" in REFUSED
    with pytest.raises(AssertionError) as failure:
        LogxHandle(endpoint).assert_no_rejections()
    assert "request #1 (not_found, answered 404):" in str(failure.value)
    assert "/v1/event is not served; post batches to /v1/events" in str(failure.value)


def test_serve_logs_one_line_and_the_cli_filters_by_it(serve: type, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db))
    requests.post(server.url + "/v1/event", json=impression(), timeout=10)
    requests.get(server.url + "/favicon.ico", timeout=10)
    listed = subprocess.run(
        [sys.executable, "-m", "mockserver", "export", "--db", str(db), "--verdict", "not_found"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert (json.loads(line)["verdict"], json.loads(line)["path"]) == ("not_found", "/v1/event")
    events = subprocess.run(
        [sys.executable, "-m", "mockserver", "events", "--url", server.url, "--verdict", "nf"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert events.returncode == 2
    assert "not_found" in events.stderr  # the choices, as the CLI lists them
    code, log = server.stop()
    assert code == 0
    lines = [line for line in log.splitlines() if "not_found" in line]
    assert len(lines) == 1, log
    assert lines[0].endswith(
        "#1 404 not_found from 127.0.0.0: POST /v1/event: /v1/event is not served; post "
        "batches to /v1/events (datafiles are at /datafiles/{sdk_key}.json)"
    )
