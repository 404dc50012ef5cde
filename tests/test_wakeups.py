"""Loop-blocking work: a commit wakes only the long-polls whose filter can match it, each
woken one reads only what is new, and long-polls and page streams are capped with a 503
that says what to do.

Before: 50 long-polls on a 200k-event memory journal made each POST take 4.5-10.6 s (every
commit woke every waiter, and each re-ran its query over the whole journal on the loop);
300 streams and 500 long-polls made 3,000 commits take 79 s instead of 1.8 s.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from helpers import impression

from mockserver import Endpoint, MemoryJournal, ThreadedServer
from mockserver.model import CoreRequest
from mockserver.web.wakeups import MAX_STREAMS, MAX_WAITERS, Wakeups

NOT_HUNG = 60.0  # a generous bound: it proves "not hung", it measures nothing


def post(endpoint: Endpoint, visitor: str) -> None:
    body = json.dumps(impression(visitor)).encode()
    outcome = endpoint.handle(CoreRequest("POST", "/v1/events", body))
    assert outcome.status == 204


def test_a_commit_wakes_only_the_waiters_its_events_can_match() -> None:
    journal = MemoryJournal()
    endpoint = Endpoint(journal)

    async def scenario() -> tuple[bool, bool, bool]:
        hub = Wakeups.of(journal)
        deadline = time.monotonic() + NOT_HUNG
        after = journal.last_id
        nobody = asyncio.ensure_future(hub.wait(after, {"visitor_id": "nobody"}, deadline))
        target = asyncio.ensure_future(hub.wait(after, {"visitor_id": "target"}, deadline))
        anyone = asyncio.ensure_future(hub.wait(after, {}, deadline))
        await asyncio.sleep(0)  # all three are waiting
        for i in range(20):
            post(endpoint, f"other-{i}")
        await asyncio.sleep(0.05)  # the deliveries ran
        woken_early = (nobody.done(), target.done(), anyone.done())
        post(endpoint, "target")
        assert await asyncio.wait_for(target, NOT_HUNG) is True
        nobody.cancel()
        return woken_early

    assert asyncio.run(scenario()) == (False, False, True)
    assert journal._commit_listeners == []  # the hub left with its last waiter


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(Endpoint(MemoryJournal())) as running:
        yield running


def _hold(server: ThreadedServer, path: str, count: int) -> list[socket.socket]:
    """`count` connections, each with one GET of `path` sent and its answer not read."""
    port = int(server.url.rsplit(":", 1)[1])
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=NOT_HUNG)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        held.append(sock)
    return held


def _refused(server: ThreadedServer, path: str) -> requests.Response:
    """Ask `path` until the cap refuses it (the held ones are taken in their own time;
    `path` must end soon when it is let in)."""
    deadline = time.monotonic() + NOT_HUNG
    while True:
        response = requests.get(server.url + path, timeout=NOT_HUNG, stream=True)
        if response.status_code == 503 or time.monotonic() > deadline:
            return response
        response.close()
        time.sleep(0.05)


def test_long_polls_past_the_cap_get_a_clear_503(server: ThreadedServer) -> None:
    poll = "/_mock/events?after=0&visitor_id=nobody&wait=60"
    held = _hold(server, poll, MAX_WAITERS)
    try:
        refused = _refused(server, poll.replace("wait=60", "wait=0.5"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert f"{MAX_WAITERS} long-polls are waiting already" in refused.json()["detail"]
        # Asking without `wait` is never refused.
        assert requests.get(server.url + "/_mock/events", timeout=10).status_code == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + NOT_HUNG  # the server notices the closed ones
    while time.monotonic() < deadline:
        status = requests.get(server.url + poll.replace("=60", "=0.01"), timeout=10).status_code
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200


def test_page_streams_past_the_cap_get_a_clear_503(server: ThreadedServer) -> None:
    held = _hold(server, "/_mock/stream", MAX_STREAMS)
    try:
        refused = _refused(server, "/_mock/stream")
        assert refused.status_code == 503
        assert f"{MAX_STREAMS} pages are watching already" in refused.json()["detail"]
        for sock in held[:3]:  # the held ones still hear of commits
            assert b"event: journal" in sock.recv(65536)
    finally:
        for sock in held:
            sock.close()


def test_waiters_that_cannot_match_do_not_slow_the_posts(server: ThreadedServer) -> None:
    """50 long-polls for a visitor who never comes, on a journal of 20,000 events, while
    200 batches arrive: every batch is answered and the long-polls end empty."""
    journal = server.endpoint.journal
    for i in range(40):
        batch = impression(f"bulk-{i}")
        snapshot = batch["visitors"][0]["snapshots"][0]
        snapshot["events"] = [dict(snapshot["events"][0], uuid=f"{i}-{k}") for k in range(500)]
        server.endpoint.handle(CoreRequest("POST", "/v1/events", json.dumps(batch).encode()))
    assert len(journal.events(limit=100_000)) == 20_000
    answers: list[dict[str, object]] = []

    def long_poll() -> None:
        params = {"after": journal.last_id, "visitor_id": "nobody", "wait": 3}
        body = requests.get(server.url + "/_mock/events", params=params, timeout=NOT_HUNG)
        answers.append(body.json())

    polls = [threading.Thread(target=long_poll) for _ in range(50)]
    for poll in polls:
        poll.start()
    with requests.Session() as session:
        for i in range(200):
            response = session.post(server.events_url, json=impression(f"v{i}"), timeout=NOT_HUNG)
            assert response.status_code == 204
    for poll in polls:
        poll.join(NOT_HUNG)
    assert len(answers) == 50
    assert all(answer["events"] == [] for answer in answers)


def test_a_long_poll_answers_its_own_events_after_others_came(server: ThreadedServer) -> None:
    journal = server.endpoint.journal
    start = journal.last_id
    found: list[dict[str, object]] = []
    poll = threading.Thread(
        target=lambda: found.append(
            requests.get(
                server.url + "/_mock/events",
                params={"after": start, "visitor_id": "target", "wait": 30},
                timeout=NOT_HUNG,
            ).json()
        )
    )
    poll.start()
    for i in range(5):
        post(server.endpoint, f"other-{i}")
    post(server.endpoint, "target")
    poll.join(NOT_HUNG)
    (answer,) = found
    assert [e["visitor_id"] for e in answer["events"]] == ["target"]  # type: ignore[union-attr,index]
