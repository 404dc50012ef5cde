"""The head bound of the httptools protocol, on a real uvicorn server and a real socket:
a header flood gets a 431 problem whether it arrives piecemeal or in one read, and the
server stops reading it soon after the bound, so its memory stays bounded."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator

import pytest
import requests
from helpers import impression

from mockserver import ThreadedServer
from mockserver.web.protocol import MAX_HEAD_BYTES

HEAD = b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as running:
        yield running


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


LOOPBACK_BUFFERS = 16 * 1024 * 1024
"""What the kernel's buffers on both ends of the loopback may take before the client sees
the answer (1.27 MB went out on a loaded machine); unchecked, a flood sends 100 MB."""


def _flood(port: int, pieces: Iterator[bytes]) -> tuple[int, bytes, int]:
    """Send pieces one by one until the server answers; (status, body, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:
                break
        status, body = _answer(sock)
    return status, body, sent


def _problem(body: bytes) -> str:
    document = json.loads(body)
    assert document["status"] == 431
    assert document["type"] == "urn:logx-mock:problem:head_too_large"
    return str(document["detail"])


def test_many_headers_sent_piecemeal_get_431_soon_after_the_bound(
    server: ThreadedServer,
) -> None:
    def pieces() -> Iterator[bytes]:
        yield HEAD
        for i in range(1_000_000):  # about 100 MB if nothing stopped it
            yield f"X-Flood-{i}: {'a' * 80}\r\n".encode()

    status, body, sent = _flood(server.port, pieces())
    assert status == 431
    assert "65,536 bytes" in _problem(body)
    assert sent < MAX_HEAD_BYTES + LOOPBACK_BUFFERS


def test_one_endless_header_value_sent_piecemeal_gets_431(server: ThreadedServer) -> None:
    def pieces() -> Iterator[bytes]:
        yield HEAD + b"X-Endless: "
        for _ in range(100_000):  # 100 MB of one header value if nothing stopped it
            yield b"b" * 1024

    status, body, sent = _flood(server.port, pieces())
    assert status == 431
    _problem(body)
    assert sent < MAX_HEAD_BYTES + LOOPBACK_BUFFERS


def test_flood_arriving_in_one_read_gets_431(server: ThreadedServer) -> None:
    headers = b"".join(f"X-H{i}: {'c' * 20}\r\n".encode() for i in range(3000))  # ~90 KB
    body = json.dumps(impression()).encode()
    raw = HEAD + headers + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    assert MAX_HEAD_BYTES < len(raw) < 200_000  # one read of uvloop's 256 KiB buffer
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        status, answer = _answer(sock)
    assert status == 431
    _problem(answer)
    assert server.endpoint.journal.last_id == 0  # nothing reached the endpoint


def test_head_just_under_the_bound_is_served(server: ThreadedServer) -> None:
    before = server.endpoint.journal.last_id
    filler = {f"X-Fill-{i}": "d" * 100 for i in range((MAX_HEAD_BYTES - 2048) // 115)}
    answer = requests.post(server.events_url, json=impression(), headers=filler, timeout=10)
    assert answer.status_code == 204
    assert server.endpoint.journal.last_id == before + 1


def test_requests_after_a_flood_are_served(server: ThreadedServer) -> None:
    _flood(server.port, iter([HEAD + b"X-Big: " + b"e" * (2 * MAX_HEAD_BYTES)]))
    assert requests.post(server.events_url, json=impression(), timeout=10).status_code == 204


def test_pipelined_requests_in_one_read_are_all_served(server: ThreadedServer) -> None:
    before = server.endpoint.journal.last_id
    body = json.dumps(impression()).encode()
    one = HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    last = one.replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nConnection: close\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(one * 3 + last)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 204 ") == 4
    assert server.endpoint.journal.last_id == before + 4
