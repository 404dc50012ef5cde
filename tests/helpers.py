"""Payload builders and small helpers shared by the tests."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mockserver import CoreRequest, Endpoint, RequestRecord

PAYLOADS = Path(__file__).parent / "payloads"
DATAFILE = Path(__file__).parent.parent / "contract_tests" / "cases" / "datafiles" / "datafile.json"
"""The project the SDK-shaped payloads belong to (the real SDK decides from it in the tests)."""
EXAMPLES = sorted(p.name for p in PAYLOADS.glob("*.json"))


def example(name: str) -> dict[str, Any]:
    """One of the SDK-shaped example payloads, as a fresh dict."""
    return json.loads((PAYLOADS / name).read_text())


def now_ms() -> int:
    return int(time.time() * 1000)


def impression(visitor_id: str = "user-1", **event: Any) -> dict[str, Any]:
    """A valid one-impression batch, shaped like the Python SDK's."""
    return {
        "account_id": "12001",
        "project_id": "111001",
        "client_name": "python-sdk",
        "client_version": "5.7.0",
        "anonymize_ip": True,
        "enrich_decisions": True,
        "visitors": [
            {
                "visitor_id": visitor_id,
                "attributes": [
                    {"entity_id": "7723280020", "key": "plan", "type": "custom", "value": "pro"}
                ],
                "snapshots": [
                    {
                        "decisions": [
                            {
                                "campaign_id": "111182",
                                "experiment_id": "111127",
                                "variation_id": "111129",
                                "metadata": {
                                    "flag_key": "checkout_flow",
                                    "rule_key": "checkout_ab",
                                    "rule_type": "feature-test",
                                    "variation_key": "treatment",
                                    "enabled": True,
                                },
                            }
                        ],
                        "events": [
                            {
                                "entity_id": "111182",
                                "key": "campaign_activated",
                                "uuid": str(uuid.uuid4()),
                                "timestamp": now_ms(),
                                **event,
                            }
                        ],
                    }
                ],
            }
        ],
    }


def conversion(key: str = "purchase", visitor_id: str = "user-1", **event: Any) -> dict[str, Any]:
    """A valid one-conversion batch."""
    batch = impression(visitor_id)
    snapshot = batch["visitors"][0]["snapshots"][0]
    del snapshot["decisions"]
    snapshot["events"] = [
        {
            "entity_id": "111095",
            "key": key,
            "uuid": str(uuid.uuid4()),
            "timestamp": now_ms(),
            **event,
        }
    ]
    return batch


def mutate(batch: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `batch` with the dotted `path` (`visitors.0.visitor_id`) set to `value`,
    or deleted when `value` is DELETE."""
    result = copy.deepcopy(batch)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return result


DELETE = object()


def run_user_tests(
    pytester: pytest.Pytester, source: str, *args: str, ini: str = ""
) -> pytest.RunResult:
    """Run `source` as a user's test module `test_user.py` (the plugin comes in by its
    entry point), with `ini` lines added to the [pytest] section."""
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}")
    pytester.makepyfile(test_user=source)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


# Raw HTTP on a socket, for requests no client library would send --------------


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data` to 127.0.0.1:`port`, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def raw_post(
    body: bytes,
    *,
    strict: bool = True,
    headers: dict[str, str] | None = None,
    length: int | None = None,
    path: str = "/v1/events",
    method: str = "POST",
) -> bytes:
    fields = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "Content-Length": str(len(body) if length is None else length),
    }
    if strict:
        fields["X-Optimizely-Strict"] = "true"
    for name, value in (headers or {}).items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return f"{method} {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode("latin-1") + body


def exchange(
    port: int, raw: bytes, timeout: float = 20, *, half_close: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status (0 when the server closed without answering), headers, body.
    With `half_close` the client then shuts its sending side, as if it gave up mid-body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading everything
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def every_page(url: str, path: str, name: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of an admin listing (`path` under `url`, the list under `name`), page
    after page: an answer stops at its size bound (`truncated`) and says where to go on
    (`next` for events; after the last id for requests)."""
    found: list[dict[str, Any]] = []
    while True:
        body = requests.get(url + path, params=params, timeout=60).json()
        found += body[name]
        if not body.get("truncated"):
            return found
        if name == "events":
            params = {**params, **body["next"]}
        else:
            params = {**params, "after": body[name][-1]["id"]}


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Whether `check()` comes true within `timeout` seconds (looking every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def integrity_ok(path: Path) -> bool:
    """Whether SQLite's integrity check finds the database file `path` sound."""
    conn = sqlite3.connect(path)
    try:
        return bool(conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)])
    finally:
        conn.close()


def in_database_file(path: Path) -> int:
    """Requests in a SQLite journal's database file itself, without its WAL (what checkpoints
    copied there); -1 when the file is caught mid-checkpoint (read without locks, a page
    being copied in can make it look malformed for that moment: look again)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    except sqlite3.DatabaseError:
        return -1
    finally:
        conn.close()


@contextlib.contextmanager
def one_transaction(journal: Any) -> Iterator[None]:
    """Requests handed to a SQLite journal's writer within this block go in one transaction:
    the writer takes every job waiting once it has the writers' turn, held here (the
    checkpoint thread's handle) until the block ends."""
    turn = journal._checkpoints._turn
    turn.acquire()
    try:
        yield
    finally:
        turn.release()


def refuse_request(journal: Any, request_id: int) -> Callable[[], None]:
    """Make a SQLite journal's file refuse to insert request `request_id` ('disk says no');
    returns what lets it through again."""
    journal._writer.execute(
        f"CREATE TRIGGER refuse_{request_id} BEFORE INSERT ON requests "
        f"WHEN NEW.id = {int(request_id)} BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    return lambda: journal._writer.execute(f"DROP TRIGGER refuse_{request_id}")


def events_request(payload: object, *headers: tuple[str, str]) -> CoreRequest:
    """`POST /v1/events` of `payload` as JSON, as an SDK sends it (content-type
    application/json), with `headers` besides, for an `Endpoint` in process."""
    body = json.dumps(payload).encode()
    return CoreRequest(
        "POST", "/v1/events", body, headers=[("content-type", "application/json"), *headers]
    )


def post_batch(endpoint: Endpoint, payload: object) -> RequestRecord:
    """`payload` through `endpoint` in process (committed when this returns): its record."""
    outcome = endpoint.handle(events_request(payload))
    assert outcome.record is not None
    return outcome.record
