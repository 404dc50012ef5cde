"""The hostile corpus, admin side: attacks on `/_mock` against a real `logx-mock serve`.

Each request is the attack itself, bounded in time (the socket gives up after
`ANSWER_WITHIN` seconds, where the unfixed server took 19.6 s or never answered) and
in size. Each gets a 4xx problem document that says what is wrong, never a 500, and
the server stays up without a traceback in its log.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest
import requests
from conftest import ServeProcess
from helpers import exchange, impression, raw_post, rss_mib

from mockserver.faults import MAX_RULES

ANSWER_WITHIN = 10.0
REGEX_ATTACK = "1" + " " * 64_000 + "x"


def admin(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    """A raw admin request (JSON content type unless told otherwise)."""
    return raw_post(body, strict=False, path=path, method=method, headers=headers)


def fault(body: str | bytes) -> bytes:
    return admin("POST", "/_mock/faults", body if isinstance(body, bytes) else body.encode())


# (name, raw request, expected statuses)
ADMIN_CORPUS: list[tuple[str, bytes, set[int]]] = [
    (
        "quadratic duration: 1 + 64,000 spaces + x",
        fault(json.dumps({"delay": REGEX_ATTACK})),
        {400},
    ),
    ("quadratic hang_max", fault(json.dumps({"hang": True, "hang_max": REGEX_ATTACK})), {400}),
    ("quadratic spec string", fault(json.dumps("delay=" + REGEX_ATTACK)), {400}),
    (
        "uniform delay of spaces",
        fault(json.dumps({"delay": REGEX_ATTACK + "-" + REGEX_ATTACK})),
        {400},
    ),
    ("status 1e400", fault('{"status": 1e400}'), {400}),
    ("seed 1e400", fault('{"seed": 1e400}'), {400}),
    ("nth 1e400", fault('{"nth": 1e400}'), {400}),
    ("retry_after 1e400", fault('{"status": 503, "retry_after": 1e400}'), {400}),
    ("times as 400 digits", fault('{"times": ' + "9" * 400 + "}"), {400}),
    ("seed as 5,000 digits", fault(json.dumps("status=503,seed=" + "9" * 5000)), {400}),
    ("delay Infinity", fault('{"delay": Infinity}'), {400}),
    ("delay 1e400", fault('{"delay": 1e400}'), {400}),
    ("delay NaN", fault('{"delay": NaN}'), {400}),
    ("rate NaN", fault('{"rate": NaN}'), {400}),
    ("hang_max 1e300", fault('{"hang": true, "hang_max": 1e300}'), {400}),
    ("a year-long delay", fault('{"delay": "31536000s"}'), {400}),
    ("lognormal sigma inf", fault('{"delay": "lognormal:100ms:inf"}'), {400}),
    ("sequence step superscript two", fault('{"sequence": ["\\u00b2"]}'), {400}),
    ("fault body 100,000 deep", fault(b"[" * 100_000 + b"]" * 100_000), {400}),
    ("a 1 MB unknown option", fault(json.dumps({"x" * 1_000_000: 1})), {400, 413}),
    ("request id past 2**63", admin("GET", "/_mock/requests/99999999999999999999999"), {404}),
    ("request id superscript two", admin("GET", "/_mock/requests/%C2%B2"), {404}),
    ("request id of 10,000 digits", admin("GET", "/_mock/requests/" + "9" * 10_000), {404}),
    ("events after superscript two", admin("GET", "/_mock/events?after=%C2%B2"), {400}),
    ("events wait=nan", admin("GET", "/_mock/events?wait=nan"), {400}),
    ("events wait=inf", admin("GET", "/_mock/events?wait=inf"), {400}),
    ("events limit 1e400", admin("GET", "/_mock/events?limit=1e400"), {400}),
    ("events after_index -1", admin("GET", "/_mock/events?after=1&after_index=-1"), {400}),
    ("events after_index past 2**62", admin("GET", "/_mock/events?after_index=" + "9" * 30), {400}),
    ("events after_index superscript", admin("GET", "/_mock/events?after_index=%C2%B2"), {400}),
]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    db = tmp_path_factory.mktemp("hostile-admin") / "journal.db"
    server = ServeProcess("--db", str(db), "--body-timeout", "2")
    yield server
    code, log = server.stop()
    assert code == 0, log
    assert "Traceback" not in log


def port(server: ServeProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("name", "raw", "statuses"), ADMIN_CORPUS, ids=[c[0] for c in ADMIN_CORPUS]
)
def test_admin_attack_gets_a_clear_4xx_in_time(
    target: ServeProcess, name: str, raw: bytes, statuses: set[int]
) -> None:
    requests.delete(target.url + "/_mock/faults", timeout=60)
    status, headers, body = exchange(port(target), raw, timeout=ANSWER_WITHIN)
    assert status in statuses, (status, body[:300])
    assert headers["content-type"] == "application/problem+json"
    detail = json.loads(body)["detail"]
    assert 10 < len(detail) < 2_000, detail  # says what is wrong, without echoing the attack
    faults = requests.get(target.url + "/_mock/faults", timeout=ANSWER_WITHIN).json()
    assert faults == {"rules": []}, "a refused rule must not be in the plan"


def test_non_finite_numbers_never_reach_the_admin_json(target: ServeProcess) -> None:
    """`"value": 1e400` once made every admin answer carry `Infinity`, which no JSON parser
    reads: the page showed no rows until the journal was cleared."""
    batch = json.dumps(impression("after-infinity")).encode()
    for body in (b'{"account_id": "1", "visitors": [], "value": 1e400}', batch):
        exchange(port(target), raw_post(body, strict=False), timeout=ANSWER_WITHIN)

    def strict(name: str) -> None:
        raise AssertionError(f"{name} in an admin answer")

    for path in ("/_mock/requests?events=true&limit=1000", "/_mock/events?limit=1000"):
        text = requests.get(target.url + path, timeout=ANSWER_WITHIN).text
        assert json.loads(text, parse_constant=strict)
    listed = requests.get(target.url + "/_mock/requests?limit=1000", timeout=ANSWER_WITHIN)
    verdicts = {r["verdict"] for r in listed.json()["requests"]}
    assert {"malformed", "accepted"} <= verdicts


def test_the_fault_plan_is_capped(target: ServeProcess) -> None:
    """20,000 rules made every batch take 4.5 s: each request is matched against each rule."""
    url = target.url + "/_mock/faults"
    requests.delete(url, timeout=ANSWER_WITHIN)
    many = [{"status": 503, "visitor_id": f"v{i}"} for i in range(20_000)]
    refused = requests.put(url, json={"rules": many}, timeout=ANSWER_WITHIN)
    assert refused.status_code == 400
    assert refused.json()["detail"] == "20,000 fault rules: a plan takes at most 100"
    for i in range(MAX_RULES):
        added = requests.post(url, json={"status": 503, "visitor_id": f"v{i}"}, timeout=10)
        assert added.status_code == 201
    full = requests.post(url, json={"status": 503}, timeout=ANSWER_WITHIN)
    assert full.status_code == 409
    assert "already holds 100 rules, the most it takes" in full.json()["detail"]
    assert len(requests.get(url, timeout=ANSWER_WITHIN).json()["rules"]) == MAX_RULES
    requests.delete(url, timeout=ANSWER_WITHIN)


# Admin bodies: bounded, timed, JSON -------------------------------------------------------


def _head(path: str, **fields: str) -> bytes:
    lines = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items())
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode()


def _status(data: bytes) -> int:
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else 0


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (each answer here closes)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65_536):
            data += chunk
    return data


def test_a_400_mb_fault_body_is_refused_before_it_is_read(target: ServeProcess) -> None:
    """It was read whole: 837 MB of RSS for one request."""
    before = rss_mib(target.proc.pid)
    with socket.create_connection(("127.0.0.1", port(target)), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(
            _head("/_mock/faults", Content_Type="application/json", Content_Length="400000000")
        )
        with contextlib.suppress(OSError):  # the server answers and closes without reading
            for _ in range(64):
                sock.sendall(b"[" * 65_536)
        data = _answer(sock)
    assert _status(data) == 413
    assert b"over 1,000,000 bytes, the most this admin route reads" in data
    assert rss_mib(target.proc.pid) - before < 50


def test_a_chunked_fault_body_is_cut_at_the_limit(target: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", port(target)), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(
            _head("/_mock/faults", Content_Type="application/json", Transfer_Encoding="chunked")
        )
        chunk = b"10000\r\n" + b" " * 65_536 + b"\r\n"
        with contextlib.suppress(OSError):
            for _ in range(40):  # 2.6 MB, past the 1 MB limit
                sock.sendall(chunk)
        data = _answer(sock)
    assert _status(data) == 413


def test_expect_100_continue_with_10_gb_gets_413_and_no_continue(target: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", port(target)), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(
            _head(
                "/_mock/datafiles",
                Content_Type="application/json",
                Content_Length=str(10 * 1024**3),
                Expect="100-continue",
            )
        )
        data = _answer(sock)
    assert b"100 Continue" not in data
    assert _status(data) == 413
    assert b"over 33,554,432 bytes" in data


def test_a_stalled_admin_body_gets_408(target: ServeProcess) -> None:
    """It stayed open past 70 s; the body timeout (2 s here) now holds on /_mock too."""
    with socket.create_connection(("127.0.0.1", port(target)), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(_head("/_mock/faults", Content_Type="application/json", Content_Length="50"))
        sock.sendall(b'{"status": ')
        data = _answer(sock)
    assert _status(data) == 408
    assert b"the body did not arrive within 2s; nothing was changed" in data


def test_a_client_that_aborts_an_admin_body_leaves_no_trace(target: ServeProcess) -> None:
    """Starlette raised ClientDisconnect: a 500 with a traceback in the log (the fixture
    checks the log at the end)."""
    with socket.create_connection(("127.0.0.1", port(target)), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(_head("/_mock/faults", Content_Type="application/json", Content_Length="100"))
        sock.sendall(b"{")
    assert requests.get(target.url + "/_mock/faults", timeout=ANSWER_WITHIN).json() == {"rules": []}
    assert "Traceback" not in target.read_log()


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_a_body_that_is_not_declared_json_gets_415(target: ServeProcess, content_type: str) -> None:
    """The three "simple" types a page on any site may send without a preflight."""
    for path in ("/_mock/faults", "/_mock/datafiles"):
        headers = {"Content-Type": content_type} if content_type else {}
        sent = requests.post(
            target.url + path, data=b'{"status": 500}', headers=headers, timeout=10
        )
        assert sent.status_code == 415, path
        assert "Content-Type: application/json" in sent.json()["detail"]
    assert requests.get(target.url + "/_mock/faults", timeout=10).json() == {"rules": []}
