"""The admin surface: loopback by default, tokens, Host checks, CORS only where it belongs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import exchange, impression

from mockserver import ThreadedServer
from mockserver.web.guard import GuardConfig, is_loopback

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def guarded() -> Iterator[ThreadedServer]:
    with ThreadedServer(guard=GuardConfig(token=TOKEN)) as server:
        yield server


def test_serve_binds_loopback_by_default(serve: Any) -> None:
    server = serve("--memory")
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_binding_beyond_loopback_needs_a_token_or_insecure_admin(serve: Any, host: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--memory", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"--host {host} exposes the admin API" in done.stderr
    assert "--admin-token" in done.stderr and "--insecure-admin" in done.stderr
    with_token = serve("--memory", "--host", host, "--admin-token", TOKEN)
    assert with_token.proc.poll() is None
    insecure = serve("--memory", "--host", host, "--insecure-admin")
    assert insecure.proc.poll() is None


def test_a_short_token_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--memory", "--admin-token", "short"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--admin-token must be at least 8 characters" in done.stderr


@pytest.mark.parametrize(
    "path",
    [
        "/_mock/requests",
        "/_mock/events",
        "/_mock/results",
        "/_mock/faults",
        "/_mock/datafiles",
        "/_mock/health",
        "/_mock/",
        "/_mock/stream",
    ],
)
def test_token_is_required_on_every_admin_path(guarded: ThreadedServer, path: str) -> None:
    denied = requests.get(guarded.url + path, timeout=5)
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"] == 'Bearer realm="logx-mock"'
    assert "needs the admin token" in denied.json()["detail"]
    wrong = requests.get(
        guarded.url + path, headers={"Authorization": "Bearer nope-nope-nope"}, timeout=5
    )
    assert wrong.status_code == 401


def test_bearer_token_and_cookie_open_the_admin_surface(guarded: ThreadedServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(guarded.url + "/_mock/requests", headers=auth, timeout=5).ok
    session = requests.Session()
    first = session.get(f"{guarded.url}/_mock/?token={TOKEN}", allow_redirects=False, timeout=5)
    assert first.status_code == 303 and first.headers["location"] == "/_mock/"
    assert (
        "HttpOnly" in first.headers["set-cookie"]
        and "SameSite=Strict" in first.headers["set-cookie"]
    )
    assert session.get(guarded.url + "/_mock/", timeout=5).text.startswith("<!doctype html>")
    assert session.get(guarded.url + "/_mock/requests", timeout=5).ok


def test_the_endpoint_itself_needs_no_token(guarded: ThreadedServer) -> None:
    assert requests.post(guarded.events_url, json=impression(), timeout=5).status_code == 204


def test_events_command_passes_the_token(
    guarded: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from mockserver.serve.cli import main

    requests.post(guarded.events_url, json=impression("tokened"), timeout=5)
    assert main(["events", "--url", guarded.url]) == 2
    assert main(["events", "--url", guarded.url, "--token", TOKEN, "--json"]) == 0
    assert '"visitor_id": "tokened"' in capsys.readouterr().out


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "attacker.test.", "127.0.0.1.nip.io"]
)
def test_admin_rejects_a_foreign_host_header(sqlite_server: ThreadedServer, host: str) -> None:
    response = requests.get(
        sqlite_server.url + "/_mock/requests", headers={"Host": host}, timeout=5
    )
    assert response.status_code == 403
    assert "is not this server's name" in response.json()["detail"]
    assert "--allow-host" in response.json()["detail"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1:1234", "localhost", "localhost:80", "[::1]:9", "10.1.2.3"]
)
def test_admin_accepts_ip_and_localhost_hosts(sqlite_server: ThreadedServer, host: str) -> None:
    response = requests.get(sqlite_server.url + "/_mock/health", headers={"Host": host}, timeout=5)
    assert response.status_code == 200


def test_allow_host_adds_a_name(serve: Any) -> None:
    server = serve("--memory", "--allow-host", "Mock.Internal")
    ok = requests.get(
        server.url + "/_mock/health", headers={"Host": "mock.internal:8080"}, timeout=5
    )
    assert ok.status_code == 200
    other = requests.get(
        server.url + "/_mock/health", headers={"Host": "other.internal"}, timeout=5
    )
    assert other.status_code == 403


def test_the_endpoint_answers_any_host(sqlite_server: ThreadedServer) -> None:
    response = requests.post(
        sqlite_server.events_url, json=impression(), headers={"Host": "evil.example"}, timeout=5
    )
    assert response.status_code == 204


def test_cors_is_open_on_the_endpoint_only(sqlite_server: ThreadedServer) -> None:
    origin = {"Origin": "https://shop.example"}
    assert (
        requests.post(
            sqlite_server.events_url, json=impression(), headers=origin, timeout=5
        ).headers["access-control-allow-origin"]
        == origin["Origin"]
    )
    for path in (
        "/_mock/requests",
        "/_mock/events",
        "/_mock/results",
        "/_mock/",
        "/_mock/faults",
        "/_mock/datafiles",
    ):
        response = requests.get(sqlite_server.url + path, headers=origin, timeout=5)
        assert "access-control-allow-origin" not in response.headers, path
        preflight = requests.options(
            sqlite_server.url + path,
            headers={**origin, "Access-Control-Request-Method": "DELETE"},
            timeout=5,
        )
        assert "access-control-allow-origin" not in preflight.headers, path
        assert preflight.status_code in (403, 404, 405)  # 403: another site's Origin


def test_nothing_fetches_urls_from_payloads_or_headers(sqlite_server: ThreadedServer) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(1.0)
    port = listener.getsockname()[1]
    bait = f"http://127.0.0.1:{port}/steal"
    hits: list[str] = []

    def accept() -> None:
        try:
            connection, _ = listener.accept()
            hits.append(connection.recv(1024).decode("latin-1"))
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    batch = impression(bait)
    batch["client_name"] = bait
    batch["visitors"][0]["attributes"][0]["value"] = bait
    batch["visitors"][0]["snapshots"][0]["events"][0]["tags"] = {"url": bait}
    headers = {"Referer": bait, "Origin": bait, "X-Forwarded-Host": bait, "Location": bait}
    requests.post(sqlite_server.events_url, json=batch, headers=headers, timeout=5)
    requests.get(sqlite_server.url + "/_mock/requests/1", timeout=5)
    thread.join()
    listener.close()
    assert hits == []


def test_is_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xe9t\xe9\r\n",
        b"GET /_mock/?token=%C3%A9t%C3%A9 HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: logx_admin=\xe9\xe9\r\n",
    ],
    ids=["bearer", "query", "cookie"],
)
def test_a_non_ascii_token_is_refused_not_a_500(guarded: ThreadedServer, raw: bytes) -> None:
    """hmac.compare_digest raises TypeError on non-ASCII text: no valid token was needed to
    make the guard answer 500 with a traceback."""
    status, _headers, body = exchange(guarded.port, raw + b"Connection: close\r\n\r\n", timeout=10)
    assert status == 401
    assert "needs the admin token" in json.loads(body)["detail"]


def test_a_cookie_header_of_backslashes_is_refused_in_time(guarded: ThreadedServer) -> None:
    """http.cookies is quadratic in backslashes before Python 3.11.10 (CVE-2024-7592): a
    60 KB Cookie header held the loop 11 s, without any token."""
    cookie = b'logx_admin="' + b"\\\\" * 30_000 + b'"'
    raw = b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + cookie
    status, _, _ = exchange(guarded.port, raw + b"\r\nConnection: close\r\n\r\n", timeout=5)
    assert status == 401


@pytest.mark.parametrize("token", ["ünïcödé-token", "has space in it", "semi;colon-token"])
def test_a_token_that_cannot_travel_in_a_header_is_refused_at_start(token: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mockserver",
            "serve",
            "--memory",
            "--port",
            "0",
            "--admin-token",
            token,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--admin-token may hold only ASCII letters, digits" in done.stderr
    assert "Traceback" not in done.stderr


# Cross-site requests -------------------------------------------------------------------

EVIL = "https://evil.example"


def _own_origin(server: ThreadedServer) -> str:
    return server.url


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/_mock/faults", {"Origin": EVIL}),
        ("POST", "/_mock/faults", {"Origin": "null"}),
        ("POST", "/_mock/faults", {"Sec-Fetch-Site": "cross-site"}),
        ("POST", "/_mock/faults", {"Sec-Fetch-Site": "same-site"}),  # another port
        ("POST", "/_mock/faults", {"Origin": "http://127.0.0.1:1"}),
        ("PUT", "/_mock/faults", {"Origin": EVIL}),
        ("DELETE", "/_mock/requests", {"Origin": EVIL}),
        ("DELETE", "/_mock/faults", {"Sec-Fetch-Site": "cross-site"}),
        ("POST", "/_mock/datafiles", {"Origin": EVIL}),
        ("DELETE", "/_mock/datafiles", {"Origin": EVIL}),
        ("GET", "/_mock/events", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}),
        ("GET", "/_mock/requests", {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}),
        ("GET", "/_mock/stream", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}),
    ],
)
def test_another_sites_request_is_refused(
    sqlite_server: ThreadedServer, method: str, path: str, headers: dict[str, str]
) -> None:
    """A page on any origin could POST (text/plain, forms: no preflight) to /_mock/faults and
    /_mock/datafiles and the server obeyed (201), or make it run any query."""
    requests.post(sqlite_server.events_url, json=impression("kept"), timeout=5)
    sent = requests.request(
        method,
        sqlite_server.url + path,
        json={"status": 500},
        headers=headers,
        timeout=5,
    )
    assert sent.status_code == 403
    assert "a cross-site request to the admin API is refused" in sent.json()["detail"]
    assert sqlite_server.endpoint.faults.describe() == []
    assert len(sqlite_server.endpoint.journal.requests()) == 1


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/_mock/faults", {"Sec-Fetch-Site": "same-origin", "Origin": "{own}"}, 201),
        ("POST", "/_mock/faults", {}, 201),  # curl, scripts, the SDKs' tests
        ("POST", "/_mock/faults", {"Sec-Fetch-Site": "none"}, 201),  # typed in by the user
        ("DELETE", "/_mock/requests", {"Origin": "{own}"}, 204),
        ("GET", "/_mock/", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, 200),
        ("GET", "/_mock/events", {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, 200),
    ],
)
def test_the_own_page_and_other_clients_pass(
    sqlite_server: ThreadedServer, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    own = {k: v.format(own=_own_origin(sqlite_server)) for k, v in headers.items()}
    sent = requests.request(
        method, sqlite_server.url + path, json={"status": 500}, headers=own, timeout=5
    )
    assert sent.status_code == status
