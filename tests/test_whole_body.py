"""The events door's short way (`web.protocol`'s `_answer_whole`), on a real uvicorn server
and a real socket, over a memory journal and a SQLite file: a POST whose body has arrived
by the time it is looked at is answered with no task and no ASGI messages, byte for byte as
the ASGI way answers it, and the connection is kept or closed as HTTP says; a body still
coming, `Expect: 100-continue` and faults take the ASGI way and keep working; a journal
that cannot commit gets its 503, and an error in the core its 500, as an app's would."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import impression, raw_exchange

from mockserver import (
    Endpoint,
    FaultRule,
    Journal,
    MemoryJournal,
    Outcome,
    SqliteJournal,
    ThreadedServer,
)
from mockserver.web import protocol

CLOSE = b"Connection: close\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    if request.param == "memory":
        journal: Journal = MemoryJournal()
    else:
        journal = SqliteJournal(tmp_path_factory.mktemp("short") / "journal.db")
    with ThreadedServer(Endpoint(journal)) as running:
        yield running
    journal.close()


def _request(body: bytes, *, path: str = "/v1/events", extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Optimizely-Strict: true\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


def _without_date(answer: bytes) -> bytes:
    return b"".join(line for line in answer.splitlines(True) if not line.startswith(b"date: "))


def _read_one(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response on a kept connection: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.partition(b":")[2])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    length = lengths[0] if lengths else 0
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def _count_short_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Watch the short way's writes (they still happen): the statuses written."""
    written: list[int] = []
    write = protocol._write

    def counting(cycle: Any, outcome: Outcome) -> None:
        written.append(outcome.status)
        write(cycle, outcome)

    monkeypatch.setattr(protocol, "_write", counting)
    return written


INVALID = json.dumps({"account_id": 5, "visitors": []}).encode()


BODIES = {"impression": b"", "invalid": INVALID, "malformed": b"{not json"}


@pytest.mark.parametrize(
    ("kind", "path", "status"),
    [
        ("impression", "/v1/events", b"204"),
        ("invalid", "/v1/events", b"400"),
        ("malformed", "/v1/events", b"400"),
        ("impression", "/v1/nowhere", b"404"),
    ],
    ids=["204", "400-invalid", "400-malformed", "404"],
)
def test_the_short_way_answers_byte_for_byte_as_asgi_does(
    server: ThreadedServer,
    kind: str,
    path: str,
    status: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = BODIES[kind] or json.dumps(impression()).encode()
    written = _count_short_writes(monkeypatch)
    short = raw_exchange(server.port, _request(body, path=path, extra=CLOSE))
    assert len(written) == 1  # it took the short way
    # `Expect: 100-continue` makes the door take the ASGI way (the client waits for the 100).
    asgi = raw_exchange(
        server.port, _request(body, path=path, extra=CLOSE + b"Expect: 100-continue\r\n")
    )
    assert len(written) == 1  # and that one did not
    assert asgi.startswith(CONTINUE)
    assert short.split(b" ", 2)[1] == status
    assert b"connection: close\r\n" in short
    # The request ids in problem bodies differ; nothing else may.
    short_text, asgi_text = _without_date(short), _without_date(asgi[len(CONTINUE) :])
    if b'"request_id": ' in short_text:
        short_id = json.loads(short_text.partition(b"\r\n\r\n")[2])["request_id"]
        asgi_id = json.loads(asgi_text.partition(b"\r\n\r\n")[2])["request_id"]
        asgi_text = asgi_text.replace(
            f'"request_id": {asgi_id}'.encode(), f'"request_id": {short_id}'.encode()
        )
    assert short_text == asgi_text


def test_a_kept_connection_serves_request_after_request(server: ThreadedServer) -> None:
    before = server.endpoint.journal.last_id
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(_request(json.dumps(impression()).encode()))
            head, body = _read_one(sock)
            assert head.startswith(b"HTTP/1.1 204 ")
            assert b"connection: close" not in head
            assert body == b""
        sock.sendall(_request(INVALID))
        head, body = _read_one(sock)
        assert head.startswith(b"HTTP/1.1 400 ")
        assert json.loads(body)["violations"]
    assert server.endpoint.journal.last_id == before + 4


def test_http_1_0_gets_connection_close_and_the_connection_closes(
    server: ThreadedServer,
) -> None:
    request = _request(json.dumps(impression()).encode()).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    answer = raw_exchange(server.port, request)  # returns only once the server closed it
    assert answer.startswith(b"HTTP/1.1 204 ")
    assert b"connection: close\r\n" in answer


def test_a_body_still_coming_takes_the_asgi_way(
    server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _count_short_writes(monkeypatch)
    body = json.dumps(impression()).encode()
    request = _request(body, extra=CLOSE)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request[: -len(body) // 2])
        time.sleep(0.2)  # the task has started with half the body
        sock.sendall(request[-len(body) // 2 :])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 204 ")
    record = server.endpoint.journal.request(server.endpoint.journal.last_id)
    assert record is not None and record.verdict == "accepted"
    assert record.payload == json.loads(body)
    assert written == []


def test_faults_take_the_asgi_way(server: ThreadedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _count_short_writes(monkeypatch)
    faults = server.endpoint.faults
    faults.add(FaultRule(status=503, times=1))
    faults.add(FaultRule(close=True, times=1))
    try:
        body = json.dumps(impression()).encode()
        first = raw_exchange(server.port, _request(body, extra=CLOSE))
        assert first.startswith(b"HTTP/1.1 503 ")
        assert b'"kind": "fault"' in first or b"urn:logx-mock:problem:fault" in first
        second = raw_exchange(server.port, _request(body))
        assert second == b""  # closed with no answer, as the rule says
        third = raw_exchange(server.port, _request(body, extra=CLOSE))
        assert third.startswith(b"HTTP/1.1 204 ")
        assert written == [204]  # only the request no fault took
    finally:
        faults.clear()


def test_a_journal_that_cannot_commit_gets_a_503_the_short_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _count_short_writes(monkeypatch)
    journal = SqliteJournal(tmp_path / "journal.db")
    with ThreadedServer(Endpoint(journal)) as running:
        journal._writer.execute(  # as a full disk would: every insert refused
            "CREATE TRIGGER nope BEFORE INSERT ON requests BEGIN "
            "SELECT RAISE(ABORT, 'disk says no'); END"
        )
        answer = raw_exchange(
            running.port, _request(json.dumps(impression()).encode(), extra=CLOSE)
        )
    journal.close()
    assert answer.startswith(b"HTTP/1.1 503 ")
    problem = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert "disk says no" in problem["detail"] and "resend" in problem["detail"]
    assert written == [503]


class _Records(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_error_in_the_core_gets_a_500_and_is_logged(
    server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug in the core")

    # A handler of the test's own on uvicorn's logger: whether that logger also propagates to
    # the root (and caplog's handler there) depends on whether an earlier test in the same
    # process had uvicorn configure logging, so caplog alone would see the record once or twice.
    uvicorn_log = logging.getLogger("uvicorn.error")
    seen = _Records()
    with monkeypatch.context() as patch:
        patch.setattr(server.endpoint, "_judge", broken)
        uvicorn_log.addHandler(seen)
        try:
            answer = raw_exchange(server.port, _request(json.dumps(impression()).encode()))
        finally:
            uvicorn_log.removeHandler(seen)
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert answer.endswith(b"Internal Server Error")
    logged = [r for r in seen.records if r.exc_info]
    assert [r.getMessage().strip() for r in logged] == ["Exception in ASGI application"]
    assert str(logged[0].exc_info[1]) == "a bug in the core"  # type: ignore[index]
    # The server carries on.
    again = raw_exchange(server.port, _request(json.dumps(impression()).encode(), extra=CLOSE))
    assert again.startswith(b"HTTP/1.1 204 ")


def test_the_short_way_writes_the_current_date(server: ThreadedServer) -> None:
    """uvicorn renews its `date` header each second; the short way's cached head follows."""

    def dated() -> float:
        answer = raw_exchange(server.port, _request(json.dumps(impression()).encode(), extra=CLOSE))
        assert answer.startswith(b"HTTP/1.1 204 ")
        line = next(x for x in answer.split(b"\r\n") if x.lower().startswith(b"date: "))
        return parsedate_to_datetime(line[6:].decode()).timestamp()

    first = dated()
    time.sleep(2.1)
    second = dated()
    assert abs(second - time.time()) <= 2
    assert second - first >= 1
