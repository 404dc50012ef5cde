"""The in-process httpx doors: a non-patching transport, and the conversions the
respx routes share with it.

An in-process request has no TCP peer; it is attributed to 127.0.0.1, as if it
had come over loopback, so every door journals the same (anonymized) address.
"""

from __future__ import annotations

import httpx

from mockserver import CoreRequest, Endpoint, FaultPlan, Outcome

from .timeline import Ending, Timeline, timeline, wait_out, wait_out_async

__all__ = ["IN_PROCESS_PEER", "LogxTransport", "render", "render_async", "to_core", "to_httpx"]

IN_PROCESS_PEER = "127.0.0.1"


def to_core(request: httpx.Request, body: bytes) -> CoreRequest:
    """An httpx request (body already read) as the core's neutral request."""
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw]
    host = next((value for name, value in headers if name == "host"), None)
    url = request.url
    return CoreRequest(request.method, url.path, body, headers, host or url.host, IN_PROCESS_PEER)


_EMPTY_HEADERS: dict[tuple[int, tuple[tuple[str, str], ...]], httpx.Headers] = {}
"""The headers of each bodiless answer seen (a 204 and its CORS headers), built once."""
_EMPTY_HEADERS_KEPT = 64


def to_httpx(outcome: Outcome, request: httpx.Request) -> httpx.Response:
    """The core's outcome as the httpx response a client would have read off the wire.

    A bodiless answer (every accepted batch) reuses headers built once for its status
    and header list, and an unread empty stream, as a transport's response comes: the
    client (or respx) reads it. The response is the one `content=b""` would make."""
    if outcome.body:
        return httpx.Response(
            outcome.status, headers=outcome.headers, content=outcome.body, request=request
        )
    key = (outcome.status, tuple(outcome.headers))
    headers = _EMPTY_HEADERS.get(key)
    if headers is None:
        headers = httpx.Headers(outcome.headers)
        if len(_EMPTY_HEADERS) < _EMPTY_HEADERS_KEPT:
            _EMPTY_HEADERS[key] = headers
    return httpx.Response(
        outcome.status, headers=headers, stream=httpx.ByteStream(b""), request=request
    )


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {})
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


def _error(line: Timeline, request: httpx.Request) -> Exception:
    """The exception httpx raises against the real server for this ending."""
    assert line.ending is not None
    if line.ending is Ending.RESET:
        return httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
    if line.ending is Ending.CLOSE:
        return httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    return httpx.ReadTimeout("timed out", request=request)  # httpx's timeout is per read


def render(plan: FaultPlan, outcome: Outcome, request: httpx.Request) -> httpx.Response:
    """Render an outcome in process, sleeping (cancellably) where the wire would wait."""
    if outcome.fault is None:
        return to_httpx(outcome, request)
    line = timeline(outcome, _read_timeout(request))
    wait_out(plan, line)
    if line.ending is not None:
        raise _error(line, request)
    return to_httpx(outcome, request)


async def render_async(plan: FaultPlan, outcome: Outcome, request: httpx.Request) -> httpx.Response:
    """`render` for async clients: the waits do not block the event loop."""
    if outcome.fault is None:
        return to_httpx(outcome, request)
    line = timeline(outcome, _read_timeout(request))
    await wait_out_async(plan, line)
    if line.ending is not None:
        raise _error(line, request)
    return to_httpx(outcome, request)


class LogxTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport (sync and async) that answers every request with the core.

    For code that builds its own client: `httpx.Client(transport=LogxTransport(endpoint))`.
    Nothing is patched; only clients given this transport reach the mock.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"<LogxTransport {self.endpoint!r}>"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        outcome = self.endpoint.handle(to_core(request, request.read()))
        return render(self.endpoint.faults, outcome, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        outcome = await self.endpoint.handle_async(to_core(request, body))
        return await render_async(self.endpoint.faults, outcome, request)
