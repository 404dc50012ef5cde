"""Slowloris against a real `logx-mock serve`: connections that send nothing, or half a head,
are closed after the head timeout; idle kept-alive ones after the idle timeout; and past the
connection limit a new connection gets a clear 503, so 260 held connections no longer take
every file descriptor of a server limited to 256 and starve everyone else."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import ServeProcess
from helpers import impression

from mockserver.web.protocol import ServerLimits, default_max_connections

HALF_HEAD = b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"


def port_of(server: ServeProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def closed_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Read until the server closes; (seconds it took, what it sent). Fails past `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open past {seconds} s")
    return time.monotonic() - started, data


@pytest.fixture
def short(serve: Any) -> ServeProcess:
    server: ServeProcess = serve("--memory", "--head-timeout", "1", "--idle-timeout", "1")
    return server


def test_a_connection_that_sends_nothing_is_closed(short: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", port_of(short))) as sock:
        took, data = closed_within(sock, 8)
    assert data == b""  # nothing was asked, nothing is answered
    assert took >= 0.5


def test_half_a_head_gets_408_and_is_closed(short: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", port_of(short))) as sock:
        sock.sendall(HALF_HEAD)
        time.sleep(0.5)
        sock.sendall(b"ication/js")  # a byte now and then does not extend the deadline
        _took, data = closed_within(sock, 8)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["detail"] == "the request head did not arrive within 1s"


@contextlib.contextmanager
def answered_once(server: ServeProcess) -> Iterator[socket.socket]:
    """A connection that has had one SDK impression answered 204, kept alive."""
    body = json.dumps(impression()).encode()
    request = (
        b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 204 ")
        yield sock


def test_the_next_head_on_a_kept_alive_connection_is_timed_too(short: ServeProcess) -> None:
    with answered_once(short) as sock:
        sock.sendall(HALF_HEAD)  # within the idle timeout, then nothing more
        _took, data = closed_within(sock, 8)
    assert data.startswith(b"HTTP/1.1 408 ")


def test_an_idle_kept_alive_connection_is_closed(short: ServeProcess) -> None:
    with requests.Session() as session:
        assert session.post(short.events_url, json=impression(), timeout=10).status_code == 204
        time.sleep(2.5)  # past the idle timeout: the server closed it; a new one is made
        assert session.post(short.events_url, json=impression(), timeout=10).status_code == 204


@pytest.mark.parametrize("begun", [False, True], ids=["idle", "head-begun"])
def test_after_an_answer_idle_closes_first_and_a_begun_head_gets_its_whole_time(
    serve: Any, begun: bool
) -> None:
    """One timer after each answer does both: with an idle timeout of 1 s and a head
    timeout of 3 s, a silent connection closes after about 1 s, and a head begun within
    that second still gets 3 s from the answer before its 408."""
    server: ServeProcess = serve("--memory", "--head-timeout", "3", "--idle-timeout", "1")
    with answered_once(server) as sock:
        if begun:
            sock.sendall(HALF_HEAD)
        took, data = closed_within(sock, 8)
    if begun:
        assert data.startswith(b"HTTP/1.1 408 ")
        assert took >= 2.0  # not cut at the idle timeout
    else:
        assert data == b""
        assert 0.5 <= took < 2.5  # the idle timeout, not the head's


def test_a_long_request_is_not_cut_by_the_head_timeout(short: ServeProcess) -> None:
    """The head timeout is for heads: a long-poll runs past it and still answers."""
    waited = requests.get(short.url + "/_mock/events", params={"wait": 2.5}, timeout=10)
    assert waited.status_code == 200


@pytest.fixture
def limited() -> Iterator[ServeProcess]:
    """serve in a process limited to 256 file descriptors, as in the report."""
    server = ServeProcess("--memory", "--head-timeout", "3", "--max-connections", "128")
    subprocess.run(
        ["prlimit", f"--pid={server.proc.pid}", "--nofile=256:256"], check=True, timeout=10
    )
    yield server
    _code, log = server.stop()
    assert "Traceback" not in log


def test_260_held_connections_do_not_starve_a_real_client(limited: ServeProcess) -> None:
    """Before: every descriptor was taken and the real client's connection was dropped
    (uvicorn on asyncio: it timed out; on uvloop: closed unanswered). Now a new connection
    over the limit closes the one that has waited longest for a head."""
    held = []
    try:
        for i in range(260):
            sock = socket.create_connection(("127.0.0.1", port_of(limited)), timeout=10)
            if i % 2:
                sock.sendall(HALF_HEAD)
            held.append(sock)
        time.sleep(0.5)
        with requests.Session() as session:
            for n in range(20):
                real = session.post(limited.events_url, json=impression(f"r{n}"), timeout=10)
                assert real.status_code == 204
    finally:
        for sock in held:
            sock.close()


def test_past_the_limit_of_busy_connections_a_new_one_gets_a_clear_503(serve: Any) -> None:
    """Connections answering real requests (long-polls here) are never evicted: past the
    limit, a new connection gets a 503 problem that says why, and may retry after a second."""
    server: ServeProcess = serve("--memory", "--max-connections", "4")
    polls = [
        threading.Thread(
            target=requests.get,
            args=(server.url + "/_mock/events",),
            kwargs={"params": {"wait": 3}, "timeout": 20},
        )
        for _ in range(4)
    ]
    for poll in polls:
        poll.start()
    time.sleep(0.5)
    refused = requests.post(server.events_url, json=impression(), timeout=10)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert "4 connections open, the most it serves (--max-connections)" in refused.json()["detail"]
    for poll in polls:
        poll.join()
    assert requests.post(server.events_url, json=impression(), timeout=10).status_code == 204


def test_the_default_limit_leaves_half_the_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert default_max_connections() == 128
        assert ServerLimits().max_connections == 128
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert default_max_connections() == max(8, min(1024, soft // 2))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--head-timeout", "0", "--head-timeout must be from 0 to 3600 seconds"),
        ("--idle-timeout", "nan", "--idle-timeout must be from 0 to 3600 seconds"),
        ("--max-connections", "0", "--max-connections must be at least 1"),
    ],
)
def test_bad_limits_are_refused_at_start(option: str, value: str, message: str) -> None:
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--memory", "--port", "0", option, value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
