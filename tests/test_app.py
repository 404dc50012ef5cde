"""The endpoint on a real uvicorn server over a real SQLite file."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import requests
from helpers import EXAMPLES, conversion, example, impression

from mockserver import MAX_BODY_BYTES, ThreadedServer

STRICT = {"X-Optimizely-Strict": "true"}


def post(server: ThreadedServer, body: object, **headers: str) -> requests.Response:
    return requests.post(server.events_url, json=body, headers=headers, timeout=10)


def journal(server: ThreadedServer) -> list[dict]:
    return requests.get(server.url + "/_mock/requests", timeout=10).json()["requests"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_sdk_shaped_examples_are_accepted_strict(sqlite_server: ThreadedServer, name: str) -> None:
    response = post(sqlite_server, example(name), **STRICT)
    assert response.status_code == 204
    assert response.content == b""
    (record,) = journal(sqlite_server)
    assert (record["verdict"], record["errors"]) == ("accepted", [])


def test_strict_error_is_400_problem_listing_every_violation(sqlite_server: ThreadedServer) -> None:
    batch = impression()
    batch["account_id"] = 12001
    batch["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = "now"
    response = post(sqlite_server, batch, **STRICT)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert problem["type"] == "urn:logx-mock:problem:invalid"
    assert "2 contract violations" in problem["detail"]
    assert [(v["path"], v["rule"], v["expected"], v["actual"]) for v in problem["violations"]] == [
        ("account_id", "type", "string", 12001),
        ("visitors[0].snapshots[0].events[0].timestamp", "type", "integer", "now"),
    ]
    (record,) = journal(sqlite_server)
    assert (record["id"], record["status"], record["verdict"], record["strict"]) == (
        problem["request_id"],
        400,
        "rejected",
        True,
    )


@pytest.mark.parametrize("header", [None, "false", "0", "yes", ""])
def test_permissive_answers_204_with_a_rejected_shadow_verdict(
    sqlite_server: ThreadedServer, header: str | None
) -> None:
    batch = impression()
    del batch["visitors"][0]["visitor_id"]
    headers = {} if header is None else {"X-Optimizely-Strict": header}
    response = post(sqlite_server, batch, **headers)
    assert response.status_code == 204
    (record,) = journal(sqlite_server)
    assert record["verdict"] == "rejected"
    assert record["strict"] is False
    assert record["strict_header"] == header
    assert [(v["path"], v["rule"]) for v in record["errors"]] == [
        ("visitors[0].visitor_id", "required")
    ]


@pytest.mark.parametrize("header", ["true", "TRUE", "1", "True "])
def test_strict_header_spellings(sqlite_server: ThreadedServer, header: str) -> None:
    assert (
        post(sqlite_server, {"visitors": []}, **{"X-Optimizely-Strict": header}).status_code == 400
    )


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"", "the body is empty"),
    ],
)
def test_malformed_bodies_get_400_in_both_modes(
    sqlite_server: ThreadedServer, strict: bool, body: bytes, detail: str
) -> None:
    headers = {"content-type": "application/json", **(STRICT if strict else {})}
    response = requests.post(sqlite_server.events_url, data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert response.json()["type"] == "urn:logx-mock:problem:malformed"
    assert detail in response.json()["detail"]
    (record,) = journal(sqlite_server)
    assert record["verdict"] == "malformed"
    if body.startswith(b"{"):
        assert record["raw"] == body.decode()


def test_over_the_limit_gets_413_with_content_length(sqlite_server: ThreadedServer) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    response = requests.post(sqlite_server.events_url, data=body, timeout=10)
    assert response.status_code == 413
    assert "3,500,000-byte limit" in response.json()["detail"]
    (record,) = journal(sqlite_server)
    assert (record["verdict"], record["payload"], record["raw"]) == ("too_large", None, None)


def test_over_the_limit_chunked_is_cut_off_without_reading_it_all(
    sqlite_server: ThreadedServer,
) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 64 MB offered, far past the limit and the 7 MB drain
            sent += 65536
            yield b" " * 65536

    with httpx.Client(timeout=10) as client:
        try:
            response = client.post(sqlite_server.events_url, content=chunks())
            assert response.status_code == 413
        except httpx.HTTPError:
            pass  # the server may close before the client finished writing
    assert sent < 1000 * 65536
    assert [r["verdict"] for r in journal(sqlite_server)] == ["too_large"]


def test_a_batch_just_under_the_limit_is_accepted(sqlite_server: ThreadedServer) -> None:
    from contract_tests.corpus import near_limit_body

    body = near_limit_body()
    assert MAX_BODY_BYTES - 3000 < len(body) <= MAX_BODY_BYTES
    response = requests.post(sqlite_server.events_url, data=body, headers=STRICT, timeout=60)
    assert response.status_code == 204
    events = requests.get(
        sqlite_server.url + "/_mock/events", params={"limit": 100000}, timeout=60
    ).json()["events"]
    assert len(events) == len(json.loads(body)["visitors"])
    assert len({e["uuid"] for e in events}) == len(events)


def test_gzip_bodies_are_accepted(sqlite_server: ThreadedServer) -> None:
    body = gzip.compress(json.dumps(impression("zipped")).encode())
    response = requests.post(
        sqlite_server.events_url,
        data=body,
        headers={"content-encoding": "gzip", "content-type": "application/json", **STRICT},
        timeout=10,
    )
    assert response.status_code == 204
    (record,) = journal(sqlite_server)
    assert record["payload"]["visitors"][0]["visitor_id"] == "zipped"


def test_gzip_bomb_gets_413(sqlite_server: ThreadedServer) -> None:
    bomb = gzip.compress(b" " * (50 * MAX_BODY_BYTES))
    response = requests.post(
        sqlite_server.events_url, data=bomb, headers={"content-encoding": "gzip"}, timeout=30
    )
    assert response.status_code == 413
    assert "decompressed body" in response.json()["detail"]


def test_cors_preflight_and_credentials(sqlite_server: ThreadedServer) -> None:
    response = requests.options(
        sqlite_server.events_url,
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type"
    plain = post(sqlite_server, impression())
    assert plain.headers["access-control-allow-origin"] == "*"


def test_any_host_is_served(sqlite_server: ThreadedServer) -> None:
    response = requests.post(
        sqlite_server.events_url,
        json=impression(),
        headers={"Host": "logx.optimizely.com"},
        timeout=10,
    )
    assert response.status_code == 204
    assert journal(sqlite_server)[0]["host"] == "logx.optimizely.com"


def test_content_type_other_than_json_is_a_warning(sqlite_server: ThreadedServer) -> None:
    response = requests.post(
        sqlite_server.events_url,
        data=json.dumps(impression()),
        headers={"content-type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 204
    (record,) = journal(sqlite_server)
    assert record["verdict"] == "accepted"
    assert [w["rule"] for w in record["warnings"]] == ["content_type"]


def test_journal_keeps_every_field(sqlite_server: ThreadedServer) -> None:
    batch = conversion(
        "purchase",
        "v-9",
        revenue=4200,
        value=3.5,
        tags={"revenue": 4200, "value": 3.5, "category": "shoes"},
    )
    batch["visitors"][0]["visitorTypo"] = 1
    before = time.time()
    post(sqlite_server, batch, **{"User-Agent": "probe/1"})
    (summary,) = journal(sqlite_server)
    record = requests.get(f"{sqlite_server.url}/_mock/requests/{summary['id']}", timeout=10).json()
    assert before - 1 <= record["received_at"] <= time.time() + 1
    assert (record["method"], record["path"], record["status"]) == ("POST", "/v1/events", 204)
    assert ["user-agent", "probe/1"] in record["headers"]
    assert record["client_ip"] == "127.0.0.0"
    assert record["payload"] == batch
    assert [n["path"] for n in record["unknown_fields"]] == ["visitors[0].visitorTypo"]
    assert [w["rule"] for w in record["warnings"]] == ["conversion_before_decision"]
    (event,) = record["events"]
    assert event["kind"] == "conversion"
    assert (event["revenue"], event["value"], event["tags"]["category"]) == (4200, 3.5, "shoes")
    assert (event["account_id"], event["client_name"], event["client_version"]) == (
        "12001",
        "python-sdk",
        "5.7.0",
    )


def test_admin_events_filters(sqlite_server: ThreadedServer) -> None:
    post(sqlite_server, impression("alice"))
    post(sqlite_server, conversion("purchase", "alice"))
    post(sqlite_server, conversion("signup", "bob"))
    url = sqlite_server.url + "/_mock/events"

    def keys(**params: str) -> list[str]:
        return [e["key"] for e in requests.get(url, params=params, timeout=10).json()["events"]]

    assert keys(visitor_id="alice") == ["campaign_activated", "purchase"]
    assert keys(kind="conversion", key="signup") == ["signup"]
    assert keys(verdict="rejected") == []
    assert keys(limit="1") == ["campaign_activated"]
    assert keys(after="1") == ["purchase", "signup"]
    bad = requests.get(url, params={"visitorId": "x"}, timeout=10)
    assert bad.status_code == 400
    assert "unknown query parameter(s) visitorId" in bad.json()["detail"]
    assert requests.get(url, params={"limit": "0"}, timeout=10).status_code == 400
    assert requests.get(url, params={"limit": "100001"}, timeout=10).status_code == 400


def test_admin_reset_health_and_missing_request(sqlite_server: ThreadedServer) -> None:
    post(sqlite_server, impression())
    health = requests.get(sqlite_server.url + "/_mock/health", timeout=10).json()
    assert health == {
        "status": "ok",
        "last_id": 1,
        "journal": "SqliteJournal",
        "max_requests": None,
    }
    assert requests.delete(sqlite_server.url + "/_mock/requests", timeout=10).status_code == 204
    assert journal(sqlite_server) == []
    missing = requests.get(sqlite_server.url + "/_mock/requests/1", timeout=10)
    assert missing.status_code == 404
    assert "no request with id '1'" in missing.json()["detail"]


def test_long_poll_returns_when_a_newer_event_arrives(sqlite_server: ThreadedServer) -> None:
    post(sqlite_server, impression("first"))
    timer = threading.Timer(0.3, lambda: post(sqlite_server, impression("second")))
    timer.start()
    started = time.monotonic()
    body = requests.get(
        sqlite_server.url + "/_mock/events", params={"after": 1, "wait": 20}, timeout=30
    ).json()
    elapsed = time.monotonic() - started
    timer.join()
    assert [e["visitor_id"] for e in body["events"]] == ["second"]
    assert elapsed < 15


def test_long_poll_times_out_empty(sqlite_server: ThreadedServer) -> None:
    body = requests.get(
        sqlite_server.url + "/_mock/events", params={"after": 0, "wait": 0.3}, timeout=10
    ).json()
    assert body == {"events": [], "last_id": 0, "truncated": False, "next": None}


def test_long_poll_ignores_non_matching_arrivals(sqlite_server: ThreadedServer) -> None:
    def later() -> None:
        post(sqlite_server, impression("other"))
        time.sleep(0.2)
        post(sqlite_server, impression("wanted"))

    thread = threading.Thread(target=later)
    thread.start()
    body = requests.get(
        sqlite_server.url + "/_mock/events", params={"visitor_id": "wanted", "wait": 20}, timeout=30
    ).json()
    thread.join()
    assert [e["visitor_id"] for e in body["events"]] == ["wanted"]


def test_openapi_document_validates(sqlite_server: ThreadedServer) -> None:
    from openapi_spec_validator import validate as validate_spec

    document = requests.get(sqlite_server.url + "/_mock/openapi.json", timeout=10).json()
    validate_spec(document)
    assert document["openapi"] == "3.1.0"
    assert {"/v1/events", "/_mock/events", "/_mock/requests"} <= set(document["paths"])


def test_client_disconnect_mid_body_is_not_journaled(sqlite_server: ThreadedServer) -> None:
    with socket.create_connection(("127.0.0.1", sqlite_server.port)) as sock:
        sock.sendall(b'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"a"')
    time.sleep(0.2)
    assert requests.get(sqlite_server.url + "/_mock/health", timeout=10).json()["last_id"] == 0


def test_journal_persists_across_server_restart(journal_path) -> None:  # type: ignore[no-untyped-def]
    from mockserver import Endpoint, SqliteJournal

    first = SqliteJournal(journal_path)
    with ThreadedServer(Endpoint(first)) as server:
        post(server, impression("kept"))
    first.close()
    second = SqliteJournal(journal_path)
    with ThreadedServer(Endpoint(second)) as server:
        assert [r["payload"]["visitors"][0]["visitor_id"] for r in journal(server)] == ["kept"]
    second.close()
