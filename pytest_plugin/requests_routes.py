"""The `requests` door: the Optimizely hosts routed to the core with `responses`.

The Optimizely Python SDK sends events and fetches datafiles with `requests` (a fresh
`Session` with urllib3's `Retry` mounted). `responses` replaces `HTTPAdapter.send`, so
every request to the two Log Endpoint hosts and the two datafile hosts is answered by a
callback into the core, while any other request passes through to whatever answered
`requests` before: the network, or a user's own `responses` mock started earlier.
urllib3's `Retry` still applies to what the core answers (responses replays it).

Faults render as the exceptions `requests` raises against the real server for each
(checked in tests/test_fault_doors.py against a real socket).
"""

from __future__ import annotations

import contextlib
import http.client
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
import responses
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.util import Timeout

from mockserver import CoreRequest, Endpoint, Outcome

from .routes import OPTIMIZELY_HOSTS
from .timeline import Ending, Timeline, timeline, wait_out
from .transport import IN_PROCESS_PEER

__all__ = ["add_logx_routes", "logx_requests", "to_core"]

_HOSTS = "|".join(re.escape(host) for host in OPTIMIZELY_HOSTS)
_URL = re.compile(rf"https?://(?:{_HOSTS})(?::\d+)?(?:[/?#]|$)")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _body(request: requests.PreparedRequest) -> bytes:
    body: Any = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("latin-1")  # what http.client does with a str body on the wire
    return bytes(body)


def to_core(request: requests.PreparedRequest) -> CoreRequest:
    """A prepared `requests` request as the core's neutral request, with the `Host`
    header http.client would have added on the wire."""
    url = urlsplit(request.url or "")
    host = url.hostname or ""
    if url.port is not None:
        host = f"{host}:{url.port}"
    headers = [
        (k.lower(), v.decode("latin-1") if isinstance(v, bytes) else v)
        for k, v in request.headers.items()
    ]
    if not any(name == "host" for name, _ in headers):
        headers.insert(0, ("host", host))
    return CoreRequest(
        method=request.method or "GET",
        path=url.path or "/",
        body=_body(request),
        headers=headers,
        host=dict(headers)["host"],
        peer=IN_PROCESS_PEER,
    )


def _read_timeout(request: requests.PreparedRequest) -> float | None:
    timeout = getattr(request, "req_kwargs", {}).get("timeout")
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    elif isinstance(timeout, Timeout):
        timeout = timeout.read_timeout
    return float(timeout) if isinstance(timeout, (int, float)) else None


def _error(line: Timeline, request: requests.PreparedRequest) -> requests.RequestException:
    """The exception `requests` raises against the real server for this ending."""
    url = urlsplit(request.url or "")
    pool_type = HTTPSConnectionPool if url.scheme == "https" else HTTPConnectionPool
    port = url.port or (443 if url.scheme == "https" else 80)
    pool = pool_type(url.hostname or "", port)  # only named in the message, never opened
    if line.ending is Ending.RESET:
        reset = ConnectionResetError(104, "Connection reset by peer")
        return requests.ConnectionError(
            ProtocolError("Connection aborted.", reset), request=request
        )
    if line.ending is Ending.CLOSE:
        closed = http.client.RemoteDisconnected("Remote end closed connection without response")
        return requests.ConnectionError(
            ProtocolError("Connection aborted.", closed), request=request
        )
    if line.ending is Ending.TIMEOUT:
        message = f"Read timed out. (read timeout={line.read_timeout})"
        return requests.ReadTimeout(ReadTimeoutError(pool, request.url, message), request=request)
    # A timeout while reading the body: requests turns urllib3's error into a ConnectionError.
    return requests.ConnectionError(
        ReadTimeoutError(pool, None, "Read timed out."), request=request
    )


def _render(endpoint: Endpoint, outcome: Outcome, request: requests.PreparedRequest) -> Any:
    if outcome.fault is not None:
        line = timeline(outcome, _read_timeout(request))
        wait_out(endpoint.faults, line)
        if line.ending is not None:
            raise _error(line, request)
    headers = list(outcome.headers)
    if outcome.status != 204 or outcome.body:
        headers.append(("content-length", str(len(outcome.body))))
    return outcome.status, headers, outcome.body


def add_logx_routes(mock: responses.RequestsMock, endpoint: Endpoint) -> None:
    """Answer the Optimizely hosts of `mock` (any `responses.RequestsMock`, e.g. your
    own `responses.mock` under `@responses.activate`) with `endpoint`."""

    def answer(request: requests.PreparedRequest) -> Any:
        return _render(endpoint, endpoint.handle(to_core(request)), request)

    for method in _METHODS:
        mock.add_callback(method, _URL, callback=answer, content_type=None)


@contextlib.contextmanager
def logx_requests(endpoint: Endpoint) -> Iterator[responses.RequestsMock]:
    """Route `requests` traffic to the Optimizely hosts into `endpoint` while in the block;
    every other request goes where it went before."""
    mock = responses.RequestsMock(
        assert_all_requests_are_fired=False,
        # Whatever answers requests right now: the network, or a user's responses mock.
        real_adapter_send=HTTPAdapter.send,  # type: ignore[arg-type]
    )
    add_logx_routes(mock, endpoint)
    mock.add_passthru("http://")
    mock.add_passthru("https://")
    with mock:
        yield mock
