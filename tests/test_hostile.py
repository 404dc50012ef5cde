"""A corpus of hostile requests against a real `logx-mock serve`: each gets its answer (a 4xx
with a clear problem body where the request reached the endpoint), never a 500, and the server
stays up with bounded memory."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import ServeProcess
from helpers import DELETE, conversion, exchange, impression, mutate, raw_post, rss_mib

IMP = impression()
CONV = conversion(revenue=100, tags={"a": 1}, properties={"p": "q"})
E = "visitors.0.snapshots.0.events.0"
D = "visitors.0.snapshots.0.decisions.0"


def js(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def wrong(path: str, value: Any, base: dict[str, Any] = IMP) -> bytes:
    return raw_post(js(mutate(base, path, value)))


# (name, raw request, expected statuses, answered by the endpoint with a problem body)
CORPUS: list[tuple[str, bytes, set[int], bool]] = [
    ("truncated json", raw_post(b'{"account_id": "1", "visitors": ['), {400}, True),
    ("unquoted keys", raw_post(b"{account_id: 1}"), {400}, True),
    ("single quotes", raw_post(b"{'account_id': '1'}"), {400}, True),
    ("trailing garbage", raw_post(js(IMP) + b" trailing"), {400}, True),
    ("utf-8 bom", raw_post(b"\xef\xbb\xbf" + js(IMP)), {400}, True),
    ("invalid utf-8", raw_post(b'{"account_id": "\xff\xfe"}'), {400}, True),
    ("utf-16", raw_post(json.dumps(IMP).encode("utf-16")), {400}, True),
    ("NaN", raw_post(b'{"account_id": "1", "visitors": [], "x": NaN}'), {400}, True),
    ("Infinity", raw_post(b'{"account_id": "1", "x": Infinity}'), {400}, True),
    ("-Infinity", raw_post(b'{"account_id": "1", "x": -Infinity}'), {400}, True),
    ("400-digit timestamp", wrong(f"{E}.timestamp", 10**400), {400}, True),
    ("1e400", raw_post(b'{"account_id": "1", "visitors": [], "x": 1e400}'), {400}, True),
    (
        "value 1e400",
        raw_post(js(mutate(CONV, f"{E}.value", 1.5)).replace(b"1.5", b"1e400")),
        {400},
        True,
    ),
    ("-1e400 in a tag", raw_post(js(CONV).replace(b'"a": 1', b'"a": -1e400')), {400}, True),
    ("5000-digit integer", raw_post(b'{"account_id": ' + b"9" * 5000 + b"}"), {400}, True),
    ("arrays 100,000 deep", raw_post(b"[" * 100_000 + b"]" * 100_000), {400}, True),
    ("objects 100,000 deep", raw_post(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), {400}, True),
    (
        "deep tag value",
        wrong(f"{E}.tags", json.loads('{"a":' * 500 + "1" + "}" * 500), CONV),
        {400},
        True,
    ),
    (
        "duplicate keys",
        raw_post(b'{"account_id": "1", "account_id": 2, "visitors": []}'),
        {400},
        True,
    ),
    (
        "3 MB string",
        raw_post(js(mutate(IMP, "visitors.0.visitor_id", "x" * 3_000_000))),
        {204},
        False,
    ),
    ("3.5 MB + 1 byte", raw_post(b'{"p": "' + b"x" * 3_499_992 + b'"}'), {413}, True),
    ("10 MB declared, not sent", raw_post(b"", length=10_000_000), {413}, True),
    (
        "gzip bomb",
        raw_post(gzip.compress(b" " * 50_000_000, mtime=0), headers={"Content-Encoding": "gzip"}),
        {413},
        True,
    ),
    ("gzip, not gzip", raw_post(js(IMP), headers={"Content-Encoding": "gzip"}), {400}, True),
    (
        "gzip truncated",
        raw_post(gzip.compress(js(IMP), mtime=0)[:-10], headers={"Content-Encoding": "gzip"}),
        {400},
        True,
    ),
    ("brotli", raw_post(js(IMP), headers={"Content-Encoding": "br"}), {400}, True),
    (
        "stacked encodings",
        raw_post(js(IMP), headers={"Content-Encoding": "gzip, gzip"}),
        {400},
        True,
    ),
    ("body shorter than declared, then EOF", raw_post(b'{"a":', length=100), {0}, False),
    ("missing content-type", raw_post(js(IMP), headers={"Content-Type": None}), {204}, False),
    ("xml content-type", raw_post(js(IMP), headers={"Content-Type": "text/xml"}), {204}, False),
    (
        "form content-type",
        raw_post(js(IMP), headers={"Content-Type": "application/x-www-form-urlencoded"}),
        {204},
        False,
    ),
    ("empty body", raw_post(b""), {400}, True),
    ("whitespace body", raw_post(b" \n\t "), {400}, True),
    ("null", raw_post(b"null"), {400}, True),
    ("array", raw_post(b"[]"), {400}, True),
    ("string", raw_post(b'"batch"'), {400}, True),
    ("number", raw_post(b"42"), {400}, True),
    ("boolean", raw_post(b"true"), {400}, True),
    ("raw control character", raw_post(b'{"account_id": "a\x01b"}'), {400}, True),
    (
        "NUL escape is fine",
        raw_post(js(mutate(IMP, "visitors.0.visitor_id", "a\u0000b"))),
        {204},
        False,
    ),
    ("lone surrogate", raw_post(js(IMP).replace(b"user-1", b"bad-\\ud800")), {204}, False),
    ("account_id list", wrong("account_id", ["1"]), {400}, True),
    ("visitors string", wrong("visitors", "v"), {400}, True),
    ("visitor number", wrong("visitors.0", 7), {400}, True),
    ("visitor_id object", wrong("visitors.0.visitor_id", {"id": 1}), {400}, True),
    ("snapshots null", wrong("visitors.0.snapshots", None), {400}, True),
    ("attributes string", wrong("visitors.0.attributes", "a"), {400}, True),
    ("attribute list", wrong("visitors.0.attributes.0", ["custom"]), {400}, True),
    ("attribute value list", wrong("visitors.0.attributes.0.value", [1]), {400}, True),
    ("snapshot number", wrong("visitors.0.snapshots.0", 3), {400}, True),
    ("events object", wrong("visitors.0.snapshots.0.events", {}), {400}, True),
    ("decisions string", wrong("visitors.0.snapshots.0.decisions", "d"), {400}, True),
    ("decision string", wrong(D, "d"), {400}, True),
    ("metadata list", wrong(f"{D}.metadata", []), {400}, True),
    ("campaign_id number", wrong(f"{D}.campaign_id", 1), {400}, True),
    ("event list", wrong(E, []), {400}, True),
    ("timestamp boolean", wrong(f"{E}.timestamp", True), {400}, True),
    ("uuid null", wrong(f"{E}.uuid", None), {400}, True),
    ("revenue boolean", wrong(f"{E}.revenue", False, CONV), {400}, True),
    ("value string", wrong(f"{E}.value", "1", CONV), {400}, True),
    ("quantity string", wrong(f"{E}.quantity", "1", CONV), {400}, True),
    ("tags string", wrong(f"{E}.tags", "t", CONV), {400}, True),
    ("tag value null", wrong(f"{E}.tags.a", None, CONV), {400}, True),
    ("properties list", wrong(f"{E}.properties", ["p"], CONV), {400}, True),
    ("property value boolean", wrong(f"{E}.properties.p", True, CONV), {400}, True),
    ("missing everything", wrong("visitors", DELETE), {400}, True),
    ("GET", raw_post(b"", method="GET"), {405}, True),
    ("TRACE", raw_post(b"", method="TRACE"), {405}, True),
    ("unknown method", raw_post(b"", method="FROB"), {405, 400}, False),
    ("path traversal", raw_post(js(IMP), path="/v1/events/../../etc/passwd"), {404}, True),
    (
        "100 KB URL",
        raw_post(js(IMP), path="/v1/events?" + "a" * 100_000),
        {431, 0},
        False,
    ),
    (
        "not HTTP at all",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        {400, 0},
        False,
    ),
    ("garbage request line", b"GARBAGE\r\n\r\n", {400, 0}, False),
    # The head is bounded to 64 KiB (mockserver/web/protocol.py): past it, a 431 and the connection
    # closes; 0 when the close reaches the client before the answer (it was still sending).
    (
        "10,000 headers",
        raw_post(js(IMP), headers={f"X-H{i}": "1" for i in range(10_000)}),
        {431, 0},
        False,
    ),
    (
        "1 MB header",
        raw_post(js(IMP), headers={"X-Big": "a" * 1_000_000}),
        {431, 0},
        False,
    ),
    ("latin-1 header value", raw_post(js(IMP), headers={"X-Name": "Ã¼ber"}), {204}, False),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    db = tmp_path_factory.mktemp("hostile") / "journal.db"
    server = ServeProcess("--db", str(db), "--body-timeout", "1")
    yield server
    code, log = server.stop()
    assert code == 0, log
    assert "Traceback" not in log


def test_corpus_has_at_least_fifty_requests() -> None:
    assert len(CORPUS) >= 50


@pytest.mark.parametrize(("name", "raw", "statuses", "problem"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_request_gets_its_answer(
    hostile: ServeProcess, name: str, raw: bytes, statuses: set[int], problem: bool
) -> None:
    port = int(hostile.url.rsplit(":", 1)[1])
    status, headers, body = exchange(port, raw, half_close=name.endswith("then EOF"))
    assert status in statuses, (status, body[:300])
    assert status < 500
    if problem:
        assert headers["content-type"] == "application/problem+json"
        detail = json.loads(body)["detail"]
        assert len(detail) > 10
    health = requests.get(hostile.url + "/_mock/health", timeout=10)
    assert health.status_code == 200


def test_admin_reads_back_every_journaled_hostile_request(hostile: ServeProcess) -> None:
    listed = requests.get(hostile.url + "/_mock/requests", params={"limit": 1000}, timeout=30)
    assert listed.status_code == 200
    for record in listed.json()["requests"]:
        one = requests.get(f"{hostile.url}/_mock/requests/{record['id']}", timeout=30)
        assert one.status_code == 200
    assert (
        requests.get(
            hostile.url + "/_mock/events", params={"limit": 100000}, timeout=30
        ).status_code
        == 200
    )


def _slow_send(port: int, parts: list[bytes], pause: float) -> tuple[int, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:
                break
            time.sleep(pause)
        data = sock.recv(65536)
    status = int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - started


def test_chunked_body_with_no_end_gets_408(hostile: ServeProcess) -> None:
    port = int(hostile.url.rsplit(":", 1)[1])
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )
    status, elapsed = _slow_send(port, [head, b'5\r\n{"a":\r\n'] + [b"1\r\n \r\n"] * 4, 0.5)
    assert status == 408
    assert elapsed < 10


def test_one_byte_a_second_gets_408_and_others_are_served(hostile: ServeProcess) -> None:
    port = int(hostile.url.rsplit(":", 1)[1])
    body = js(IMP)
    head = raw_post(b"", length=len(body))
    started = time.monotonic()
    results: list[Any] = []
    import threading

    slow = threading.Thread(
        target=lambda: results.append(
            _slow_send(port, [head] + [bytes([b]) for b in body[:20]], 0.3)
        )
    )
    slow.start()
    time.sleep(0.2)
    fast = requests.post(hostile.url + "/v1/events", json=impression(), timeout=10)
    assert fast.status_code == 204
    assert time.monotonic() - started < 2
    slow.join()
    assert results[0][0] == 408


def test_memory_stays_bounded(hostile: ServeProcess) -> None:
    port = int(hostile.url.rsplit(":", 1)[1])
    before = rss_mib(hostile.proc.pid)
    for _ in range(3):
        for name, raw, _, _ in CORPUS:
            exchange(port, raw, half_close=name.endswith("then EOF"))
    after = rss_mib(hostile.proc.pid)
    assert after < 400, f"RSS {after:.0f} MiB"
    assert after - before < 150, f"RSS grew from {before:.0f} to {after:.0f} MiB"
