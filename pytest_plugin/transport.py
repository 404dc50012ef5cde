"""The in-process httpx doors: a non-patching transport, and the conversions the
respx routes share with it.

An in-process request has no TCP peer; it is attributed to 127.0.0.1, as if it
had come over loopback, so every door journals the same (anonymized) address.
"""

from __future__ import annotations

import httpx

from mockserver import CoreRequest, Endpoint, Outcome

__all__ = ["IN_PROCESS_PEER", "LogxTransport", "to_core", "to_httpx"]

IN_PROCESS_PEER = "127.0.0.1"


def to_core(request: httpx.Request, body: bytes) -> CoreRequest:
    """An httpx request (body already read) as the core's neutral request."""
    return CoreRequest(
        method=request.method,
        path=request.url.path,
        body=body,
        headers=[
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw
        ],
        host=request.headers.get("host") or request.url.host,
        peer=IN_PROCESS_PEER,
    )


def to_httpx(outcome: Outcome, request: httpx.Request) -> httpx.Response:
    """The core's outcome as the httpx response a client would have read off the wire."""
    return httpx.Response(
        outcome.status, headers=outcome.headers, content=outcome.body, request=request
    )


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
        body = request.read()
        return to_httpx(self.endpoint.handle(to_core(request, body)), request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        outcome = await self.endpoint.handle_async(to_core(request, body))
        return to_httpx(outcome, request)
