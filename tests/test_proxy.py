"""`serve --proxy-port`: the forward proxy answers for Optimizely's hosts itself (CONNECT
terminated with the logx-mock CA, and absolute-form http://), journals the real client
address, refuses every other host with 403, and never connects anywhere."""

from __future__ import annotations

import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from helpers import impression, raw_exchange

from mockserver import Endpoint, MemoryJournal
from mockserver.serve.ca import CA_CERT, ServerCertificate
from mockserver.serve.proxy import MAX_HEAD, proxy_listener
from mockserver.serve.server import ReadyServer, bind_socket, uvicorn_config
from mockserver.web.app import create_app
from mockserver.web.protocol import ServerLimits


@pytest.fixture
def proxied(serve: Any, tmp_path: Path) -> Any:
    """`logx-mock serve --proxy-port 0` on a plain server port, with its own CA."""
    server = serve("--memory", "--proxy-port", "0", "--ca-dir", str(tmp_path / "ca"))
    server.cafile = str(tmp_path / "ca" / CA_CERT)
    server.proxies = {"https": server.proxy_url, "http": server.proxy_url}
    server.proxy_port = urlsplit(server.proxy_url).port
    return server


def journal(server: Any) -> list[dict[str, Any]]:
    return requests.get(server.url + "/_mock/requests", timeout=10).json()["requests"]


def post_through(
    proxied: Any,
    batch: dict[str, Any] | None = None,
    *,
    host: str = "logx.optimizely.com",
    trust: bool = True,
) -> requests.Response:
    """POST a batch to https://HOST/v1/events through the proxy, trusting its CA (or not)."""
    return requests.post(
        f"https://{host}/v1/events",
        json=batch or impression(),
        proxies=proxied.proxies,
        verify=proxied.cafile if trust else True,
        timeout=10,
    )


def test_connect_to_both_logx_hosts_is_served_with_the_real_client_address(proxied: Any) -> None:
    assert proxied.ca_line.startswith(f"CA: {proxied.cafile} (made now; ")
    for host in ("logx.optimizely.com", "eu.logx.optimizely.com"):
        batch = impression(f"via-{host}")
        batch["anonymize_ip"] = False  # keep the address whole, to show whose it is
        response = post_through(proxied, batch, host=host)
        assert response.status_code == 204, response.text
    records = journal(proxied)
    assert [(r["host"], r["client_ip"], r["verdict"]) for r in records] == [
        ("logx.optimizely.com", "127.0.0.1", "accepted"),
        ("eu.logx.optimizely.com", "127.0.0.1", "accepted"),
    ]
    # anonymize_ip as the SDKs send it: the stored address is truncated, as on the server port
    post_through(proxied)
    assert journal(proxied)[-1]["client_ip"] == "127.0.0.0"


def test_one_tunnel_carries_many_requests(proxied: Any) -> None:
    with requests.Session() as session:
        session.proxies = proxied.proxies
        for i in range(5):
            response = session.post(
                "https://logx.optimizely.com/v1/events",
                json=impression(f"k{i}"),
                verify=proxied.cafile,  # per request: REQUESTS_CA_BUNDLE would beat Session.verify
                timeout=10,
            )
            assert response.status_code == 204
    assert len(journal(proxied)) == 5


def test_absolute_form_http_is_served_too(proxied: Any) -> None:
    response = requests.post(
        "http://logx.optimizely.com/v1/events?x=1",
        json=impression(),
        proxies=proxied.proxies,
        timeout=10,
    )
    assert response.status_code == 204
    (record,) = journal(proxied)
    assert (record["host"], record["path"]) == ("logx.optimizely.com", "/v1/events")


def test_a_foreign_host_gets_403_and_nothing_leaves_the_machine(proxied: Any) -> None:
    # A real listener stands in for "elsewhere": were anything tunnelled or fetched, it would
    # see a connection. The proxy answers only after deciding, so the check below is exact.
    with socket.create_server(("127.0.0.1", 0)) as elsewhere:
        port = elsewhere.getsockname()[1]
        for target in (f"127.0.0.1:{port}", "example.com:443", "logx.optimizely.com:8443"):
            answer = raw_exchange(
                proxied.proxy_port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer
            assert f"logx-mock's proxy refused CONNECT {target}".encode() in answer
        answer = raw_exchange(
            proxied.proxy_port,
            f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(),
        )
        assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer
        with pytest.raises(requests.exceptions.ProxyError, match="403"):
            requests.get("https://example.com/", proxies=proxied.proxies, timeout=10)
        assert select.select([elsewhere], [], [], 0)[0] == []  # no connection ever came
    assert journal(proxied) == []
    _, log = proxied.stop()
    assert f"logx-mock's proxy refused CONNECT 127.0.0.1:{port}: it answers only for" in log
    assert f"logx-mock's proxy refused GET http://127.0.0.1:{port}" in log
    assert "never forwards; exempt other hosts with NO_PROXY" in log


def tunnel(proxied: Any) -> ssl.SSLSocket:
    """A TLS connection to logx.optimizely.com through the proxy, checked against the CA."""
    sock = socket.create_connection(("127.0.0.1", proxied.proxy_port), timeout=10)
    sock.sendall(b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n\r\n")
    assert sock.recv(1024) == b"HTTP/1.1 200 Connection established\r\n\r\n"
    context = ssl.create_default_context(cafile=proxied.cafile)
    return context.wrap_socket(sock, server_hostname="logx.optimizely.com")


def test_inside_the_tunnel_heads_are_bounded_as_on_the_server_port(proxied: Any) -> None:
    with tunnel(proxied) as tls:
        tls.sendall(b"POST /v1/events HTTP/1.1\r\nHost: logx.optimizely.com\r\n")
        tls.sendall(b"x-flood: " + b"a" * (70 * 1024) + b"\r\n\r\n")
        answer = tls.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert journal(proxied) == []


def test_a_reset_fault_resets_the_tunnel(proxied: Any) -> None:
    requests.post(proxied.url + "/_mock/faults", json={"reset": True}, timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        post_through(proxied)
    (record,) = journal(proxied)
    assert record["verdict"] == "faulted"


def test_the_admin_api_is_not_reachable_through_the_proxy(proxied: Any) -> None:
    response = requests.get(
        "https://logx.optimizely.com/_mock/requests",
        proxies=proxied.proxies,
        verify=proxied.cafile,
        timeout=10,
    )
    assert response.status_code == 403
    assert "is not this server's name" in response.json()["detail"]


def test_an_app_that_does_not_trust_the_ca_fails_and_the_console_says_why(proxied: Any) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        post_through(proxied, trust=False)
    _, log = proxied.stop()
    assert "proxy: TLS for logx.optimizely.com failed" in log
    assert "the app must trust the logx-mock CA (`logx-mock ca` shows how)" in log


def test_garbage_gets_a_4xx_never_a_500_and_the_proxy_keeps_serving(proxied: Any) -> None:
    assert raw_exchange(proxied.proxy_port, b"\x16\x03\x01 garbage\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )
    assert raw_exchange(
        proxied.proxy_port, b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n"
    ).startswith(b"HTTP/1.1 400 Bad Request")
    assert raw_exchange(proxied.proxy_port, b"X" * (MAX_HEAD + 10)).startswith(b"HTTP/1.1 431 ")
    assert raw_exchange(proxied.proxy_port, b"CONNECT\r\n\r\n").startswith(b"HTTP/1.1 403 ")
    pipelined = b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05hello"
    answer = raw_exchange(proxied.proxy_port, pipelined)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"only after the proxy's 200 answer to CONNECT" in answer
    # A CONNECT that then speaks plain HTTP instead of TLS: closed, not answered in clear.
    not_tls = b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", proxied.proxy_port), timeout=10) as sock:
        sock.sendall(not_tls)
        assert sock.recv(1024) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: logx.optimizely.com\r\n\r\n")
        assert sock.recv(1024) == b""
    response = post_through(proxied)
    assert response.status_code == 204
    code, log = proxied.stop()
    assert code == 0
    assert "Traceback" not in log


def test_ctrl_c_with_an_idle_proxy_connection_stops_cleanly(proxied: Any) -> None:
    assert journal(proxied) == []  # serving (and so handling Ctrl-C) by now
    with socket.create_connection(("127.0.0.1", proxied.proxy_port), timeout=10) as sock:
        sock.sendall(b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n")  # no end of head
        code, log = proxied.stop(signal.SIGINT)
    assert code == 0
    assert log.rstrip().endswith("every acknowledged request is in the journal")


def test_proxy_with_workers_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mockserver",
            "serve",
            "--db",
            str(tmp_path / "j.db"),
            "--workers",
            "2",
            "--proxy-port",
            "0",
            "--ca-dir",
            str(tmp_path / "ca"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--proxy-port runs in one process: leave out --workers" in done.stderr


@pytest.fixture
def quick_proxy(tmp_path: Path) -> Iterator[int]:
    """The proxy in process, with a head timeout short enough to wait for."""
    certificate = ServerCertificate.open(tmp_path / "ca")
    app = create_app(Endpoint(MemoryJournal()))
    sock = bind_socket("127.0.0.1", 0)
    listener = proxy_listener(sock, app, certificate.leaf, limits=ServerLimits(head_timeout=0.3))
    server = ReadyServer(uvicorn_config(app), side=[listener])
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [bind_socket("127.0.0.1", 0)]}, daemon=True
    )
    thread.start()
    server.ready.wait()
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join()
    certificate.close()


def test_a_head_that_never_ends_gets_408(quick_proxy: int) -> None:
    with socket.create_connection(("127.0.0.1", quick_proxy), timeout=10) as sock:
        sock.sendall(b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"the request head did not arrive within 0.3s" in answer


def test_a_tls_handshake_that_never_comes_is_dropped(quick_proxy: int) -> None:
    with socket.create_connection(("127.0.0.1", quick_proxy), timeout=10) as sock:
        sock.sendall(b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
        assert sock.recv(1024) == b""  # closed once the handshake timeout passed


def test_the_leaf_key_lives_only_as_long_as_the_run(tmp_path: Path) -> None:
    certificate = ServerCertificate.open(tmp_path)
    folder = certificate.leaf.keyfile.parent
    assert folder != tmp_path and certificate.leaf.keyfile.exists()
    assert certificate.leaf.server_context().minimum_version == ssl.TLSVersion.TLSv1_2
    certificate.close()
    assert not folder.exists()


def test_serve_head_timeout_bounds_the_proxy_head_too(serve: Any, tmp_path: Path) -> None:
    server = serve(
        "--memory", "--proxy-port", "0", "--head-timeout", "0.5", "--ca-dir", str(tmp_path)
    )
    with socket.create_connection(("127.0.0.1", urlsplit(server.proxy_url).port), timeout=10) as s:
        s.sendall(b"CONNECT logx.optimizely.com:443 HTTP/1.1\r\n")
        assert b"did not arrive within 0.5s" in s.recv(65536)


def test_httpx_and_urllib_need_only_https_proxy_and_ssl_cert_file(proxied: Any) -> None:
    """The README's trust table: Python's `ssl`, httpx and urllib trust the CA with
    `SSL_CERT_FILE`; with `HTTPS_PROXY` beside it, an app that knows nothing of logx-mock
    reaches it through the proxy (events and the datafile path)."""
    app = """
import json, urllib.request, httpx
body = json.dumps({"account_id": "12001", "visitors": []}).encode()
url = "https://eu.logx.optimizely.com/v1/events"
request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
print(urllib.request.urlopen(request, timeout=10).status)
print(httpx.post(url, content=body, headers={"content-type": "application/json"}).status_code)
print(httpx.get("https://cdn.optimizely.com/datafiles/none.json").status_code)
"""
    done = subprocess.run(
        [sys.executable, "-c", app],
        env={"HTTPS_PROXY": proxied.proxy_url, "SSL_CERT_FILE": proxied.cafile},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["204", "204", "403"]  # 403: no datafile given to this one
    records = journal(proxied)
    eu = ("eu.logx.optimizely.com", "rejected")  # rejected: an empty batch, as sent
    assert [(r["host"], r["verdict"]) for r in records] == [eu, eu]
