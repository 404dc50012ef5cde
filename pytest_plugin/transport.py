"""The in-process httpx doors: a non-patching transport, and the conversions the
respx routes share with it.

An in-process request has no TCP peer; it is attributed to 127.0.0.1, as if it
had come over loopback, so every door journals the same (anonymized) address.
"""

from __future__ import annotations

import httpx

from mockserver import CoreRequest, Endpoint, Outcome
from mockserver.faults import FaultAction, FaultPlan

__all__ = ["IN_PROCESS_PEER", "LogxTransport", "render", "render_async", "to_core", "to_httpx"]

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


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {})
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


def _plan_fault(
    fault: FaultAction, outcome: Outcome, request: httpx.Request
) -> tuple[float, Exception | None]:
    """After the delay: how long the client waits, and what it then raises (None: a response).

    These are the exceptions httpx raises against the real server for each fault.
    """
    read = _read_timeout(request)
    if fault.kind == "reset":
        return 0.0, httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
    if fault.kind == "close":
        return 0.0, httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if fault.kind == "hang":
        if read is not None and read < fault.hang_max:
            return read, httpx.ReadTimeout("timed out", request=request)
        return fault.hang_max, httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if fault.kind == "dribble":
        if read is not None and fault.dribble_interval > read:  # httpx's timeout is per read
            return read, httpx.ReadTimeout("timed out", request=request)
        return fault.dribble_interval * len(outcome.body), None
    return 0.0, None


def render(plan: FaultPlan, outcome: Outcome, request: httpx.Request) -> httpx.Response:
    """Render an outcome in process, sleeping (cancellably) where the wire would wait."""
    fault = outcome.fault
    if fault is None:
        return to_httpx(outcome, request)
    waiter = plan.waiter()
    try:
        if fault.delay:
            waiter.wait(fault.delay)
        wait, error = _plan_fault(fault, outcome, request)
        if wait and not waiter.cancelled:
            waiter.wait(wait)
    finally:
        plan.release(waiter)
    if error is not None:
        raise error
    return to_httpx(outcome, request)


async def render_async(plan: FaultPlan, outcome: Outcome, request: httpx.Request) -> httpx.Response:
    """`render` for async clients: the waits do not block the event loop."""
    fault = outcome.fault
    if fault is None:
        return to_httpx(outcome, request)
    waiter = plan.waiter()
    try:
        if fault.delay:
            await waiter.wait_async(fault.delay)
        wait, error = _plan_fault(fault, outcome, request)
        if wait and not waiter.cancelled:
            await waiter.wait_async(wait)
    finally:
        plan.release(waiter)
    if error is not None:
        raise error
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
