"""Every fault, produced by every door and seen by real clients as production would show it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
from helpers import DATAFILE, impression

from mockserver import Endpoint, MemoryJournal, Outcome, ThreadedServer
from pytest_plugin import LogxTransport, logx_router
from pytest_plugin.requests_routes import logx_requests
from pytest_plugin.transport import to_httpx

URL = "https://logx.optimizely.com/v1/events"
DOORS = [
    "server",
    "server-requests",
    "respx-sync",
    "respx-async",
    "transport-sync",
    "transport-async",
    "requests",
]
"""Each door with the client it serves; `server` and `server-requests` are the wire."""


class Door:
    """One way into the mock, with a `post` that behaves like its client's call."""

    def __init__(self, name: str, endpoint: Endpoint, server: ThreadedServer | None) -> None:
        self.name, self.endpoint, self.server = name, endpoint, server
        self.client = "requests" if name.endswith("requests") else "httpx"

    def post(self, payload: Any, timeout: float = 5.0) -> Any:
        url = self.server.events_url if self.server else URL
        if self.name == "server":
            return httpx.post(url, json=payload, timeout=timeout)
        if self.name == "server-requests":
            return requests.post(url, json=payload, timeout=timeout)
        if self.name == "requests":
            with logx_requests(self.endpoint):
                return requests.post(url, json=payload, timeout=timeout)
        if self.name == "respx-sync":
            with logx_router(self.endpoint):
                return httpx.post(url, json=payload, timeout=timeout)
        if self.name == "transport-sync":
            with httpx.Client(transport=LogxTransport(self.endpoint), timeout=timeout) as client:
                return client.post(url, json=payload)
        return asyncio.run(self._post_async(url, payload, timeout))

    async def _post_async(self, url: str, payload: Any, timeout: float) -> httpx.Response:
        if self.name == "respx-async":
            with logx_router(self.endpoint):
                async with httpx.AsyncClient(timeout=timeout) as client:
                    return await client.post(url, json=payload)
        transport = LogxTransport(self.endpoint)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            return await client.post(url, json=payload)


@pytest.fixture(params=DOORS)
def door(request: pytest.FixtureRequest) -> Iterator[Door]:
    endpoint = Endpoint(MemoryJournal())
    if request.param.startswith("server"):
        with ThreadedServer(endpoint) as server:
            yield Door(request.param, endpoint, server)
    else:
        yield Door(request.param, endpoint, None)


_RESET = "Connection reset by peer"
_CLOSED = "Remote end closed connection without response"
# rule -> (what httpx raises, its message), (what requests raises, its message)
TRANSPORT_FAULTS: list[
    tuple[dict[str, Any], tuple[type[Exception], str], tuple[type[Exception], str]]
] = [
    ({"reset": True}, (httpx.ReadError, _RESET), (requests.ConnectionError, _RESET)),
    (
        {"close": True},
        (httpx.RemoteProtocolError, "without sending a response"),
        (requests.ConnectionError, _CLOSED),
    ),
    (
        {"hang": True, "hang_max": 10},
        (httpx.ReadTimeout, "timed out"),
        (requests.ReadTimeout, r"Read timed out\. \(read timeout=0\.5\)"),
    ),
    (
        {"hang": True, "hang_max": 0.2},
        (httpx.RemoteProtocolError, "without sending a response"),
        (requests.ConnectionError, _CLOSED),
    ),
    (
        # requests reads the head, then times out in the body: urllib3's ReadTimeoutError
        # arrives as a ConnectionError, not a ReadTimeout.
        {"dribble": True, "dribble_interval": 2, "status": 503},
        (httpx.ReadTimeout, "timed out"),
        (requests.ConnectionError, r"Read timed out\.\)?$"),
    ),
]


def _exact(message: str) -> str:
    """An error message without the host and port it names (the wire's are 127.0.0.1:N)."""
    return re.sub(r"HTTPS?ConnectionPool\(host='[^']*', port=\d+\)", "POOL", message)


@pytest.mark.parametrize(
    ("rule", "httpx_error", "requests_error"),
    TRANSPORT_FAULTS,
    ids=["reset", "close", "hang-timeout", "hang-max", "dribble-timeout"],
)
def test_transport_faults_raise_what_the_client_raises_on_the_wire(
    door: Door,
    rule: dict[str, Any],
    httpx_error: tuple[type[Exception], str],
    requests_error: tuple[type[Exception], str],
) -> None:
    error, message = httpx_error if door.client == "httpx" else requests_error
    door.endpoint.faults.add(**rule)
    with pytest.raises(error, match=message) as info:
        door.post(impression(), timeout=0.5)
    assert type(info.value) is error
    (record,) = door.endpoint.journal.requests()
    assert record.verdict == "faulted"
    assert record.events[0].verdict == "faulted"
    assert record.fault is not None and record.fault["kind"] == next(iter(rule))


@pytest.mark.parametrize(
    ("rule", "_", "__"),
    TRANSPORT_FAULTS,
    ids=["reset", "close", "hang-timeout", "hang-max", "dribble-timeout"],
)
def test_the_requests_door_raises_the_wires_exception_word_for_word(
    rule: dict[str, Any], _: Any, __: Any
) -> None:
    """The requests door and a real socket give requests the same exception and message."""

    def raised(name: str) -> tuple[type[Exception], str, type[Exception], str]:
        endpoint = Endpoint(MemoryJournal())
        endpoint.faults.add(**rule)
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(ThreadedServer(endpoint)) if name != "requests" else None
            with pytest.raises(requests.RequestException) as info:
                Door(name, endpoint, server).post(impression(), timeout=0.5)
        cause = info.value.args[0]
        return type(info.value), _exact(str(info.value)), type(cause), _exact(str(cause))

    assert raised("requests") == raised("server-requests")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 400, 413])
def test_status_faults_answer_a_problem_with_the_seed(door: Door, status: int) -> None:
    door.endpoint.faults.add(status=status, seed=7)
    response = door.post(impression())
    assert response.status_code == status
    problem = response.json()
    assert problem["type"] == "urn:logx-mock:problem:fault"
    assert problem["seed"] == 7
    assert "seed 7" in problem["detail"] and "resend them" in problem["detail"]
    (record,) = door.endpoint.journal.requests()
    assert (record.verdict, record.status, record.fault) == (
        "faulted",
        status,
        {"rule": 1, "kind": "status", "status": status, "seed": 7},
    )


def test_429_carries_retry_after(door: Door) -> None:
    door.endpoint.faults.add(status=429, retry_after=3)
    response = door.post(impression())
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")


def test_a_sequence_then_normal(door: Door) -> None:
    door.endpoint.faults.add(sequence=[500, 500, "normal"])
    assert [door.post(impression()).status_code for _ in range(4)] == [500, 500, 204, 204]
    assert [r.verdict for r in door.endpoint.journal.requests()] == [
        "faulted",
        "faulted",
        "accepted",
        "accepted",
    ]


def test_dribbled_response_arrives_slowly_but_whole(door: Door) -> None:
    door.endpoint.faults.add(dribble=True, dribble_interval=0.002, status=503)
    started = time.monotonic()
    response = door.post(impression(), timeout=5)
    assert response.status_code == 503
    assert response.json()["status"] == 503
    assert time.monotonic() - started >= 0.002 * len(response.content)


def test_latency_delays_a_normal_answer_whose_events_count(door: Door) -> None:
    door.endpoint.faults.add(delay="300ms")
    started = time.monotonic()
    assert door.post(impression()).status_code == 204
    assert time.monotonic() - started >= 0.3
    (record,) = door.endpoint.journal.requests()
    assert record.verdict == "accepted"
    assert record.fault == {
        "rule": 1,
        "kind": "delay",
        "delay_ms": 300.0,
        "seed": record.fault["seed"],
    }  # type: ignore[index]


def test_clearing_the_plan_cuts_pending_delays_short(door: Door) -> None:
    door.endpoint.faults.add(delay="30s")
    threading.Timer(0.3, door.endpoint.faults.clear).start()
    started = time.monotonic()
    assert door.post(impression(), timeout=60).status_code == 204
    assert time.monotonic() - started < 20


def test_delays_never_block_other_requests() -> None:
    endpoint = Endpoint(MemoryJournal())
    endpoint.faults.add(delay="3s", visitor_id="slow")
    with ThreadedServer(endpoint) as server:
        slow = threading.Thread(
            target=requests.post,
            args=(server.events_url,),
            kwargs={"json": impression("slow"), "timeout": 10},
        )
        slow.start()
        time.sleep(0.1)
        started = time.monotonic()
        assert requests.post(server.events_url, json=impression("fast"), timeout=10).ok
        assert time.monotonic() - started < 1.5
        endpoint.faults.clear()
        slow.join()


def test_requests_sees_resets_and_closes_as_connection_errors() -> None:
    endpoint = Endpoint(MemoryJournal())
    with ThreadedServer(endpoint) as server:
        endpoint.faults.add(reset=True, times=1)
        with pytest.raises(requests.ConnectionError, match="Connection reset by peer"):
            requests.post(server.events_url, json=impression(), timeout=5)
        endpoint.faults.add(close=True, times=1)
        with pytest.raises(requests.ConnectionError, match="Remote end closed connection"):
            requests.post(server.events_url, json=impression(), timeout=5)
        endpoint.faults.add(hang=True, times=1)
        with pytest.raises(requests.ReadTimeout):
            requests.post(server.events_url, json=impression(), timeout=0.3)
        assert requests.post(server.events_url, json=impression(), timeout=5).status_code == 204


def _retrying_post(client: httpx.Client, url: str, payload: Any, tries: int = 5) -> list[int]:
    """A small retry policy, as an integrator would write: retry 5xx/429 with backoff."""
    statuses = []
    for attempt in range(tries):
        response = client.post(url, json=payload)
        statuses.append(response.status_code)
        if response.status_code < 500 and response.status_code != 429:
            break
        time.sleep(float(response.headers.get("retry-after", 0.05 * 2**attempt)))
    return statuses


def test_an_httpx_retry_policy_retries_503_and_the_journal_shows_it() -> None:
    from pytest_plugin import LogxHandle

    endpoint = Endpoint(MemoryJournal())
    handle = LogxHandle(endpoint)
    handle.faults.add(status=503, times=2)
    batch = impression()
    uuid = batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"]
    with ThreadedServer(endpoint) as server, httpx.Client() as client:
        assert _retrying_post(client, server.events_url, batch) == [503, 503, 204]
    attempts = handle.attempts(uuid)
    assert [(a.verdict, a.status) for a in attempts] == [
        ("faulted", 503),
        ("faulted", 503),
        ("accepted", 204),
    ]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(attempts)]
    # Each retry came at least its backoff (0.05 s, then 0.1 s) after the attempt before it.
    # Not `gaps[1] > gaps[0]`: a busy machine can delay one attempt by more than the 0.05 s
    # the backoff adds (0.113 s then 0.105 s seen with two test suites on 2 cores).
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095
    handle.assert_delivered_once(uuid)


def test_assert_delivered_once_catches_a_resend_after_a_lost_204() -> None:
    from pytest_plugin import LogxHandle

    endpoint = Endpoint(MemoryJournal())
    handle = LogxHandle(endpoint)
    handle.faults.add(delay="1s", times=1)  # the 204 comes after the client gave up
    batch = impression()
    uuid = batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"]
    with ThreadedServer(endpoint) as server:
        with pytest.raises(requests.ReadTimeout):
            requests.post(server.events_url, json=batch, timeout=0.2)
        assert requests.post(server.events_url, json=batch, timeout=5).status_code == 204
    with pytest.raises(AssertionError) as info:
        handle.assert_delivered_once()
    assert str(info.value).splitlines() == [
        "1 event(s) were not delivered exactly once:",
        f"  uuid {uuid!r}: accepted 2 time(s) in 2 arrival(s)",
        "    - request #1: accepted, answered 204, fault delay (rule #1)",
        "    - request #2: accepted, answered 204",
    ]


@pytest.mark.parametrize(
    "rule",
    [
        {"status": 500},
        {"status": 503, "times": 1},
        {"reset": True},
        {"close": True},
        {"status": 400},
    ],
)
def test_optimizely_sdk_default_dispatcher_under_faults(
    rule: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """python-sdk's EventDispatcher mounts urllib3 Retry(total=3, status_forcelist=500-504),
    but urllib3 retries neither a POST on a status nor a request already sent: so the SDK
    sends once, logs "Dispatch event failed" and drops the event. Nothing is delivered."""
    from optimizely import optimizely

    from pytest_plugin import LogxEventDispatcher, LogxHandle

    endpoint = Endpoint(MemoryJournal())
    handle = LogxHandle(endpoint)
    handle.faults.add(**rule)
    with ThreadedServer(endpoint) as server:
        client = optimizely.Optimizely(
            DATAFILE.read_text(), event_dispatcher=LogxEventDispatcher(server.events_url)
        )
        client.track("purchase", "sdk-user")
        client.close()
    (uuid,) = {e.uuid for e in handle.events}
    assert [a.verdict for a in handle.attempts(uuid)] == ["faulted"]
    assert "Dispatch event failed" in caplog.text
    with pytest.raises(AssertionError, match="accepted 0 time"):
        handle.assert_delivered_once(uuid)


def test_seeded_plan_is_reproducible_over_the_wire() -> None:
    def run() -> list[int]:
        endpoint = Endpoint(MemoryJournal())
        endpoint.faults.add(status=503, rate=0.5, seed=1234)
        with ThreadedServer(endpoint) as server:
            return [
                requests.post(server.events_url, json=impression(), timeout=5).status_code
                for _ in range(30)
            ]

    first = run()
    assert first == run()
    assert set(first) == {204, 503}


def test_admin_api_manages_the_plan(sqlite_server: ThreadedServer) -> None:
    base = sqlite_server.url + "/_mock/faults"
    assert requests.get(base, timeout=5).json() == {"rules": []}
    added = requests.post(base, json={"status": 503, "times": 1, "seed": 9}, timeout=5)
    assert added.status_code == 201
    assert added.json() == {"id": 1, "status": 503, "times": 1, "seed": 9, "fired": 0}
    assert requests.post(sqlite_server.events_url, json=impression(), timeout=5).status_code == 503
    assert requests.get(base, timeout=5).json()["rules"][0]["fired"] == 1
    replaced = requests.put(base, json={"rules": ["reset,nth=2", {"delay": "10ms"}]}, timeout=5)
    assert [r.get("reset", False) for r in replaced.json()["rules"]] == [True, False]
    assert requests.delete(base, timeout=5).status_code == 204
    assert requests.get(base, timeout=5).json() == {"rules": []}
    bad = requests.post(base, json={"stauts": 503}, timeout=5)
    assert bad.status_code == 400
    assert "did you mean 'status'?" in bad.json()["detail"]
    assert requests.put(base, data=b"{", timeout=5).status_code == 415  # no JSON type
    json_type = {"Content-Type": "application/json"}
    assert requests.put(base, data=b"{", headers=json_type, timeout=5).status_code == 400
    assert requests.put(base, json={"rules": 5}, timeout=5).status_code == 400


def test_admin_delete_cancels_a_pending_delay(sqlite_server: ThreadedServer) -> None:
    base = sqlite_server.url + "/_mock/faults"
    requests.post(base, json={"delay": "30s"}, timeout=5)
    threading.Timer(0.3, lambda: requests.delete(base, timeout=5)).start()
    started = time.monotonic()
    assert requests.post(sqlite_server.events_url, json=impression(), timeout=60).ok
    assert time.monotonic() - started < 20


def test_cli_fault_and_faults_file(serve: Callable[..., Any], tmp_path: Any) -> None:
    rules = tmp_path / "faults.json"
    rules.write_text(json.dumps({"rules": [{"status": 502, "nth": 1}]}))
    server = serve("--memory", "--faults-file", str(rules), "--fault", "status=503,times=1")
    statuses = [
        requests.post(server.events_url, json=impression(), timeout=5).status_code for _ in range(3)
    ]
    assert statuses == [502, 503, 204]
    listed = requests.get(server.url + "/_mock/faults", timeout=5).json()["rules"]
    assert [(r["id"], r["fired"]) for r in listed] == [(1, 1), (2, 1)]
    _, log = server.stop()
    assert "#1 502 faulted from 127.0.0.0" in log and "[fault: status, rule #1]" in log
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--fault", "stauts=5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown fault option 'stauts'" in done.stderr


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(204, [("access-control-allow-origin", "*")]),
        Outcome(204, []),
        Outcome(204, [("access-control-allow-origin", "https://app.example"), ("vary", "Origin")]),
        Outcome(400, [("content-type", "application/problem+json")], b'{"title": "bad"}'),
    ],
)
def test_an_outcome_renders_as_content_would_render_it(outcome: Outcome) -> None:
    """A bodiless answer is built from headers made once and an unread empty stream; it
    must be the response `httpx.Response(status, headers=..., content=b"")` was."""
    request = httpx.Request("POST", URL)
    for _ in range(2):  # built, then reused
        response = to_httpx(outcome, request)
        expected = httpx.Response(
            outcome.status, headers=outcome.headers, content=outcome.body, request=request
        )
        assert response.status_code == expected.status_code
        assert response.headers.raw == expected.headers.raw
        assert response.read() == expected.content
        assert response.request is request
        response.headers["x-changed"] = "by the client"  # one response's own headers
    assert "x-changed" not in to_httpx(outcome, request).headers


def test_the_respx_route_answers_as_a_side_effect_would() -> None:
    """The route answers itself (no respx side effect): respx still records each call with
    its response, raises a fault's connection error to the client after recording the call,
    and a user who mocks the route gets respx's answer."""
    endpoint = Endpoint(MemoryJournal())
    with logx_router(endpoint) as router, httpx.Client() as client:
        answer = client.post(URL, json=impression())
        assert answer.status_code == 204 and answer.content == b""
        route = router["logx"]
        assert route.call_count == 1 and route.calls.last.response.status_code == 204
        endpoint.faults.add(reset=True, times=1)
        with pytest.raises(httpx.ReadError):
            client.post(URL, json=impression())
        assert route.call_count == 2 and route.calls.last.optional_response is None
        route.respond(418)
        assert client.post(URL, json=impression()).status_code == 418
    assert len(endpoint.journal.requests()) == 2
