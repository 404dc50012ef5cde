"""Ctrl-C and SIGTERM with requests in flight: every client gets what the journal says.

Before (issue #14, item 4), Ctrl-C during `serve --fault delay=10s` printed a 30-line
`CancelledError` traceback, curl got a 500, and the journal said `204 accepted`. Each test
runs a real `logx-mock serve`, real clients in flight, a real signal, then reads the journal
file itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ServeProcess
from helpers import impression

IN_FLIGHT = 3
STOPPED = "logx-mock stopped; every acknowledged request is in the journal"


def _journal(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, verdict, meta FROM requests ORDER BY id").fetchall()
    return [{"id": i, "verdict": v, **json.loads(meta)} for i, v, meta in rows]


def _wait_for(condition: Any, what: str) -> None:
    """Poll the server's state (never a fixed sleep) until `condition()` holds."""
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def _ready(server: ServeProcess) -> bool:
    try:
        return requests.get(server.url + "/_mock/health", timeout=2).status_code == 200
    except requests.RequestException:  # workers still starting: refused, or not read yet
        return False


def _in_flight(server: ServeProcess) -> list[tuple[int, Any]]:
    """Start IN_FLIGHT clients, return once the server has journaled all of them (their
    answers are held by the fault); the list fills with (status, body) as answers come,
    status 0 for no answer."""
    answers: list[tuple[int, Any]] = []

    def send(visitor: str) -> None:
        try:
            response = requests.post(server.events_url, json=impression(visitor), timeout=60)
        except requests.ConnectionError:
            answers.append((0, None))
            return
        answers.append((response.status_code, response.content))

    _wait_for(lambda: _ready(server), "the server ready")
    for i in range(IN_FLIGHT):
        threading.Thread(target=send, args=(f"v{i}",), daemon=True).start()
    _wait_for(
        lambda: (
            len(requests.get(server.url + "/_mock/requests", timeout=5).json()["requests"])
            == IN_FLIGHT
        ),
        "every request journaled",
    )
    return answers


def _signal(server: ServeProcess, sig: signal.Signals, group: bool) -> tuple[int, str]:
    """`group`: to the whole process group, as a terminal's Ctrl-C does (workers too)."""
    if not group:
        return server.stop(sig, timeout=30)
    os.killpg(server.proc.pid, sig)
    server.proc.communicate(timeout=30)
    return server.proc.returncode, server.read_log()


CASES = [
    # fault, signal, workers, to the process group
    ("delay=60s", signal.SIGINT, 1, False),
    ("delay=60s", signal.SIGTERM, 1, False),
    ("hang", signal.SIGINT, 1, True),
    ("hang", signal.SIGTERM, 1, False),
    ("status=503,delay=60s", signal.SIGINT, 1, False),
    ("delay=60s", signal.SIGINT, 2, True),
    ("delay=60s", signal.SIGTERM, 2, False),
    ("hang", signal.SIGINT, 2, True),
]


@pytest.mark.parametrize(
    ("fault", "sig", "workers", "group"),
    CASES,
    ids=[f"{f}-{s.name}-workers{w}{'-group' if g else ''}" for f, s, w, g in CASES],
)
def test_a_signal_answers_every_request_in_flight_as_journaled(
    serve: type[ServeProcess],
    tmp_path: Path,
    fault: str,
    sig: signal.Signals,
    workers: int,
    group: bool,
) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db), "--fault", fault, "--workers", str(workers))
    answers = _in_flight(server)
    code, log = _signal(server, sig, group)
    assert code == 0, log
    assert "Traceback" not in log and "ERROR" not in log, log
    others = [line for line in log.splitlines() if " from 127.0.0.0: " not in line]
    assert others == [STOPPED], log  # one console line besides the request lines
    _wait_for(lambda: len(answers) == IN_FLIGHT, "every client's answer")
    records = _journal(db)
    assert sorted(status for status, _ in answers) == sorted(r["status"] for r in records)
    for status, body in answers:
        if status >= 400:  # a problem names its request: it is that request's record
            (record,) = [r for r in records if r["id"] == json.loads(body)["request_id"]]
            assert (record["status"], record["verdict"]) == (status, "faulted")
    if fault == "hang":  # no answer, and the journal says so: status 0, the hang fault
        assert {(r["status"], r["verdict"], r["fault"]["kind"]) for r in records} == {
            (0, "faulted", "hang")
        }
    if fault == "delay=60s":
        assert {(r["status"], r["verdict"]) for r in records} == {(204, "accepted")}


def test_a_body_still_coming_gets_503_and_nothing_is_recorded(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db))
    _wait_for(lambda: _ready(server), "the server ready")
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"account_id":'
        )
        _wait_for(
            lambda: requests.get(server.url + "/_mock/health", timeout=5).status_code == 200,
            "the server serving while the body is held",
        )
        code, log = server.stop(signal.SIGINT, timeout=30)
        answer = sock.recv(65536)
    assert code == 0, log
    assert log.splitlines() == [STOPPED]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert json.loads(body)["type"] == "urn:logx-mock:problem:stopping"
    assert "nothing was recorded" in json.loads(body)["detail"]
    assert _journal(db) == []
