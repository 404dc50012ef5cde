"""Writing to the ASGI connection: an `Outcome` as a response, an injected fault as what
the wire shows of it (a delay, a reset, a close, a hang, a dribbled body).

ASGI has no way to say "reset the connection". uvicorn's `send` is a bound
method of its per-request cycle, which holds the asyncio transport; that is the
one place the socket can be reached. Under another ASGI server the transport
is not found, and the fault falls back to raising, which makes that server
drop or fail the request (the README says so).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, cast

from starlette.types import Receive, Send

from ..errors import NoTransportError
from ..fault_plan import FaultPlan
from ..faults import NO_ANSWER
from ..model import Outcome
from ..timing import Waiter

__all__ = [
    "abort_connection",
    "close_connection",
    "has_content_length",
    "render_fault",
    "send_outcome",
]


def _transport(send: Any) -> asyncio.Transport:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    # Duck-typed: uvloop's transports do everything asyncio.Transport does without
    # subclassing it, and uvicorn picks uvloop whenever it is installed.
    if not all(hasattr(transport, name) for name in ("abort", "close", "get_extra_info")):
        raise NoTransportError(
            "this ASGI server hides its transport: run logx-mock on uvicorn for reset/close faults"
        )
    return cast(asyncio.Transport, transport)


def abort_connection(send: Any) -> None:
    """Reset the TCP connection: SO_LINGER 0, then abort, so the peer reads ECONNRESET."""
    transport = _transport(send)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def close_connection(send: Any) -> None:
    """Close the connection cleanly (FIN) without having sent any response."""
    transport = _transport(send)
    if not transport.is_closing():
        transport.close()


def has_content_length(outcome: Outcome) -> bool:
    """Whether the answer says its `content-length`: all but a bodyless 204."""
    return outcome.status != 204 or bool(outcome.body)


async def send_outcome(send: Send, outcome: Outcome) -> None:
    """Render an `Outcome` as an ASGI response."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers]
    if has_content_length(outcome):
        headers.append((b"content-length", str(len(outcome.body)).encode()))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": outcome.body})


async def render_fault(
    plan: FaultPlan, outcome: Outcome, receive: Receive, send: Send, *, hurry: bool = False
) -> None:
    """Render an injected fault on the wire: delay, then the answer or no answer at all.

    `hurry` (the server is shutting down): no delay and no hang, the rest as journaled."""
    fault = outcome.fault
    assert fault is not None
    waiter = plan.waiter()
    if hurry:
        waiter.cancel()
    try:
        if fault.delay:
            await waiter.wait_async(fault.delay)
        if fault.kind is None or fault.kind == "status":
            await send_outcome(send, outcome)
        elif fault.kind in NO_ANSWER:
            if fault.kind == "hang":
                await _hang(waiter, fault.hang_max, receive)
            (abort_connection if fault.kind == "reset" else close_connection)(send)
            for _ in range(3):  # let uvicorn see the connection gone before we return
                await asyncio.sleep(0)
        else:
            await _dribble(waiter, outcome, fault.dribble_interval, send)
    finally:
        plan.release(waiter)


async def _hang(waiter: Waiter, limit: float, receive: Receive) -> None:
    """Answer nothing until the client gives up, the bound passes, or the plan is cleared."""
    gone = asyncio.ensure_future(receive())  # resolves with http.disconnect
    bound = asyncio.ensure_future(waiter.wait_async(limit))
    await asyncio.wait({gone, bound}, return_when=asyncio.FIRST_COMPLETED)
    for task in (gone, bound):
        task.cancel()


async def _dribble(waiter: Waiter, outcome: Outcome, interval: float, send: Send) -> None:
    """Send the headers at once, then the body one byte per `interval`."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers]
    headers.append((b"content-length", str(len(outcome.body)).encode()))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    for i in range(len(outcome.body)):
        if not waiter.cancelled:
            await waiter.wait_async(interval)
        await send(
            {
                "type": "http.response.body",
                "body": outcome.body[i : i + 1],
                "more_body": i + 1 < len(outcome.body),
            }
        )
