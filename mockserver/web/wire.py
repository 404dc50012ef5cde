"""Writing to the ASGI connection: an `Outcome` as a response, or an ending without one
(the reset and close faults).

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

from starlette.types import Send

from ..errors import NoTransportError
from ..model import Outcome

__all__ = ["abort_connection", "close_connection", "send_outcome"]


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


async def send_outcome(send: Send, outcome: Outcome) -> None:
    """Render an `Outcome` as an ASGI response."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers]
    if outcome.status != 204 or outcome.body:
        headers.append((b"content-length", str(len(outcome.body)).encode()))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": outcome.body})
