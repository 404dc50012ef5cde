"""Reading request bodies: bounded in size and in time, on every path.

`read_body` is what the events door and the admin API both use: it streams a body up to
a limit, never buffering more, within a deadline. `AdminBodies` puts every admin request
with a body through it before any handler runs: a `Content-Length` over the limit gets a
413 before a byte is read (so `Expect: 100-continue` gets no `100 Continue`), a body that
grows past it a 413 as soon as it does, a stalled one a 408, a client that goes away
nothing at all, and a body that is not `application/json` a 415.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..model import Outcome
from ..problem import problem
from .wire import send_outcome

__all__ = [
    "ADMIN_BODY_BYTES",
    "AdminBodies",
    "BodyDisconnected",
    "BodyTimedOut",
    "content_length",
    "read_body",
    "timeout_outcome",
]

ADMIN_BODY_BYTES = 1_000_000
"""The largest admin request body (a fault plan of 100 rules is a few KB); datafile uploads
have their own limit."""
_DRAIN_FACTOR = 2


class BodyDisconnected(Exception):
    """The client went away before sending its whole body."""


class BodyTimedOut(Exception):
    """The client did not send its whole body in time."""


async def read_body(
    receive: Receive, limit: int, declared: int | None, timeout: float, *, drain: bool = True
) -> tuple[bytes, bool]:
    """The body, or (b"", True) once it is known to exceed `limit`.

    With `drain`, past the limit nothing more is kept, but up to twice the limit is still
    read and thrown away: closing on unread data makes the kernel reset the connection, and
    the client would never see its 413. Without it, reading stops at the limit (the
    connection is then closed). The whole body must arrive within `timeout` seconds: one
    deadline for the whole read, not a timer and a task per chunk.
    """
    cap = _DRAIN_FACTOR * limit if drain else limit
    if declared is not None and declared > cap:
        return b"", True
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(timeout):
                return await _read_chunks(receive, limit, cap)
        return await asyncio.wait_for(_read_chunks(receive, limit, cap), timeout)
    except asyncio.TimeoutError:
        raise BodyTimedOut from None


async def _read_chunks(receive: Receive, limit: int, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks = []  # past the limit: drop what was kept, keep nothing more
        if not message.get("more_body", False) or size > cap:
            return (b"", True) if size > limit else (b"".join(chunks), False)


def content_length(headers: list[tuple[str, str]]) -> int | None:
    """The declared `Content-Length`, or None (absent, or not a number)."""
    for name, value in headers:
        if name == "content-length":
            value = value.strip()
            return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None
    return None


def timeout_outcome(seconds: float, what: str) -> Outcome:
    """A 408 that closes the connection: the body did not arrive in time."""
    headers, body = problem("timeout", 408, f"the body did not arrive within {seconds:g}s; {what}")
    return Outcome(408, [*headers, ("connection", "close")], body)


class AdminBodies:
    """ASGI middleware: every admin request with a body is read (bounded, timed, JSON
    only) before the admin app sees it, which then reads it from memory."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout: Callable[[], float],
        limits: dict[str, int] | None = None,
    ) -> None:
        """`timeout()` gives the body timeout at each request (`--body-timeout`); `limits`
        maps a path to its own limit (the default is `ADMIN_BODY_BYTES`)."""
        self.app = app
        self.timeout = timeout
        self.limits = limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        limit = self.limits.get(scope["path"].rstrip("/"), ADMIN_BODY_BYTES)
        media = next((v for k, v in headers if k == "content-type"), "")
        if media.split(";", 1)[0].strip().lower() != "application/json":
            await _refuse(
                send,
                415,
                f"send the body as JSON, with Content-Type: application/json (got {media[:60]!r})",
            )
            return
        declared = content_length(headers)
        if declared is not None and declared > limit:
            await _refuse(send, 413, _too_large(limit))  # before reading: no 100 Continue
            return
        timeout = self.timeout()
        try:
            body, too_large = await read_body(receive, limit, declared, timeout, drain=False)
        except BodyDisconnected:
            return  # nobody to answer
        except BodyTimedOut:
            await send_outcome(send, timeout_outcome(timeout, "nothing was changed"))
            return
        if too_large:
            await _refuse(send, 413, _too_large(limit))
            return
        await self.app(scope, _replay(body, receive), send)


def _has_body(scope: Scope) -> bool:
    """Whether the head announces a body (a chunked one, or a length above zero)."""
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"transfer-encoding" or (
            name == b"content-length" and value.strip() not in (b"", b"0")
        ):
            return True
    return False


def _too_large(limit: int) -> str:
    return f"the body is over {limit:,} bytes, the most this admin route reads; nothing was read"


async def _refuse(send: Send, status: int, detail: str) -> None:
    headers, body = problem("admin", status, detail)
    await send_outcome(send, Outcome(status, [*headers, ("connection", "close")], body))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
