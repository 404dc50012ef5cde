"""Datafile checks through the real ways in: `serve --datafile` (SQLite, one and two
workers), the admin API, the journal after a restart, and `validate --datafile`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import DATAFILE, DELETE, mutate
from sdk_traffic import sdk_batch

from mockserver import (
    DATAFILE_RULES,
    CoreRequest,
    Datafile,
    Datafiles,
    Endpoint,
    EndpointConfig,
    SqliteJournal,
)
from mockserver.serve.cli import main

D = "visitors.0.snapshots.0.decisions.0"
E = "visitors.0.snapshots.0.events.0"
DECISION = "visitors[0].snapshots[0].decisions[0]"
JSON_TYPE = {"Content-Type": "application/json"}


def post(url: str, payload: Any) -> requests.Response:
    return requests.post(url, json=payload, timeout=30)


def last_record(url: str) -> dict[str, Any]:
    listed = requests.get(url + "/_mock/requests", params={"events": "true"}, timeout=30).json()
    record: dict[str, Any] = listed["requests"][-1]
    return record


def rules(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The datafile warnings of a journaled request."""
    return [(w["rule"], w["path"]) for w in record["warnings"] if w["rule"] in DATAFILE_RULES]


def test_serve_with_a_datafile_warns_and_shows_keys(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--datafile", str(DATAFILE))
    assert server.proc.stdout.readline().startswith(
        "datafile: datafile.json (account 12001, project 111001, revision 42"
    )
    assert post(server.events_url, sdk_batch("feature_test")).status_code == 204
    clean = last_record(server.url)
    assert rules(clean) == []
    assert clean["keys"][f"{DECISION}.experiment_id"] == "checkout_ab"
    (event,) = clean["events"]
    assert event["decision_keys"] == [
        {"experiment_key": "checkout_ab", "variation_key": "treatment", "flag_key": "checkout_flow"}
    ]

    wrong = mutate(sdk_batch("track"), f"{E}.entity_id", "999095")
    response = post(server.events_url, wrong)
    assert response.status_code == 204  # like production: a warning never changes the status
    strict = requests.post(
        server.events_url,
        json=mutate(wrong, f"{E}.uuid", "another-uuid"),
        headers={"x-optimizely-strict": "true"},
        timeout=30,
    )
    assert strict.status_code == 204  # not even in strict mode
    assert rules(last_record(server.url)) == [
        ("unknown_event", "visitors[0].snapshots[0].events[0].entity_id")
    ]
    code, log = server.stop()
    assert code == 0
    assert "#3 204 accepted" in log


def test_events_command_names_a_keyless_conversion_by_the_datafile(
    serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve("--memory", "--datafile", str(DATAFILE))
    post(server.events_url, mutate(sdk_batch("track"), f"{E}.key", DELETE))
    assert main(["events", "--url", server.url]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    # the key column (a conversion has no variation: the revenue follows)
    assert row[:6] == ["1", "accepted", "conversion", "user-1", "purchase", "4200"]


def test_keys_survive_a_restart_of_the_sqlite_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    config = EndpointConfig(datafiles=Datafiles((Datafile.load(DATAFILE),)))
    journal = SqliteJournal(path)
    body = json.dumps(sdk_batch("track")).encode()
    outcome = Endpoint(journal, config=config).handle(
        CoreRequest("POST", "/v1/events", body, [("content-type", "application/json")])
    )
    assert outcome.status == 204
    journal.close()
    reopened = SqliteJournal(path)
    try:
        (event,) = reopened.events()
        assert (event.entity_id, event.entity_key, event.key) == ("111095", "purchase", "purchase")
        (record,) = reopened.requests()
        assert record.keys["visitors[0].attributes[1].entity_id"] == "città"
    finally:
        reopened.close()


def test_admin_api_lists_adds_and_clears_datafiles(serve: Any) -> None:
    server = serve("--memory")
    base = server.url + "/_mock/datafiles"
    assert requests.get(base, timeout=10).json() == {"datafiles": []}
    wrong = mutate(sdk_batch("activate"), f"{D}.experiment_id", "999127")
    post(server.events_url, wrong)
    assert rules(last_record(server.url)) == []  # no datafile yet: nothing to check against

    added = requests.post(base, data=DATAFILE.read_bytes(), headers=JSON_TYPE, timeout=10)
    assert added.status_code == 201
    assert added.json()["project_id"] == "111001"
    assert [d["revision"] for d in requests.get(base, timeout=10).json()["datafiles"]] == ["42"]
    post(server.events_url, wrong)
    assert rules(last_record(server.url)) == [("unknown_experiment", f"{DECISION}.experiment_id")]

    bad = requests.post(base, data=b'{"version": "4"}', headers=JSON_TYPE, timeout=10)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert "accountId must be a string" in bad.json()["detail"]

    assert requests.delete(base, timeout=10).status_code == 204
    assert requests.get(base, timeout=10).json() == {"datafiles": []}
    post(server.events_url, wrong)
    assert rules(last_record(server.url)) == []


def test_admin_api_refuses_an_oversized_datafile(serve: Any) -> None:
    server = serve("--memory")
    huge = b'{"version": "4", "x": "' + b"a" * (33 * 1024 * 1024) + b'"}'
    url = server.url + "/_mock/datafiles"
    response = requests.post(url, data=huge, headers=JSON_TYPE, timeout=60)
    assert response.status_code == 413
    assert requests.get(server.url + "/_mock/health", timeout=10).status_code == 200


def test_serve_refuses_a_bad_datafile_with_the_reason(serve: Any, tmp_path: Path) -> None:
    bad = tmp_path / "datafile.json"
    bad.write_text('{"version": "4", "accountId": "1"}')
    with pytest.raises(AssertionError, match="projectId must be a string"):
        serve("--memory", "--datafile", str(bad))
    with pytest.raises(AssertionError, match="cannot read the datafile"):
        serve("--memory", "--datafile", str(tmp_path / "missing.json"))


def test_two_workers_each_check_against_the_datafile(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2", "--datafile", str(DATAFILE))
    wrong = mutate(sdk_batch("activate"), "revision", "41")
    for _ in range(20):  # enough requests that both workers answer some
        assert post(server.events_url, wrong).status_code == 204
    records = requests.get(server.url + "/_mock/requests", params={"limit": 100}, timeout=30)
    found = [rules(r) for r in records.json()["requests"]]
    assert found == [[("revision_mismatch", "revision")]] * 20


def test_validate_with_a_datafile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = mutate(sdk_batch("activate"), "visitors.0.attributes.1", DELETE)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(payload))
    assert main(["validate", "--datafile", str(DATAFILE), str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("checked against datafile.json (account 12001, project 111001")
    assert out[1] == f"{path}: ok, 0 error(s), 1 warning(s)"
    assert out[2].startswith("  warning visitors[0].attributes: '$opt_bot_filtering' is missing")
    assert main(["validate", "--json", "--datafile", str(DATAFILE), str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [w["rule"] for w in result["warnings"]] == ["bot_filtering"]
    assert result["keys"][f"{DECISION}.experiment_id"] == "checkout_ab"


def test_validate_refuses_a_bad_datafile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(sdk_batch("activate")))
    assert main(["validate", "--datafile", str(tmp_path / "nope.json"), str(path)]) == 2
    assert "cannot read the datafile" in capsys.readouterr().err


def _datafiles_listed(url: str) -> list[str]:
    listed = requests.get(url + "/_mock/datafiles", timeout=10).json()["datafiles"]
    return [d["revision"] for d in listed]


def _wait_for_revisions(url: str, wanted: list[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _datafiles_listed(url) != wanted:
        assert time.monotonic() < deadline, f"still {_datafiles_listed(url)}, wanted {wanted}"
        time.sleep(0.1)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_follows_a_changed_datafile(serve: Any, tmp_path: Path, workers: str) -> None:
    path = tmp_path / "datafile.json"
    data = json.loads(DATAFILE.read_text())
    path.write_text(json.dumps(data))
    server = serve("--db", str(tmp_path / "j.db"), "--workers", workers, "--datafile", str(path))
    newer = mutate(sdk_batch("activate"), "revision", "43")
    post(server.events_url, newer)
    assert rules(last_record(server.url)) == [("revision_mismatch", "revision")]

    path.write_text(json.dumps({**data, "revision": "43"}))
    _wait_for_revisions(server.url, ["43"])
    if workers == "2":  # every worker follows the file: each answers without the warning
        time.sleep(1.5)
    for _ in range(6):
        post(server.events_url, mutate(newer, f"{E}.uuid", f"u-{time.monotonic_ns()}"))
        assert rules(last_record(server.url)) == []

    path.write_text('{"version": "4", "accountId": "12001"')  # half written
    time.sleep(2.5)
    assert _datafiles_listed(server.url) == ["43"]  # the previous version stays in force
    code, log = server.stop()
    assert code == 0
    assert "datafile " in log and "changed: now project 111001, revision 43" in log
    assert "is not JSON" in log and "still checking against its previous version" in log
