"""The ASGI door: the Log Endpoint on any host and path outside `/_mock`, and the
admin API under it.

The events door is pure ASGI (no `BaseHTTPMiddleware`, no router on the hot
path): it streams the body up to the size limit, never buffering more, hands a
`CoreRequest` to the core and sends back its `Outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from ..endpoint import Endpoint
from ..model import CoreRequest, Outcome
from ..problem import problem
from .admin.routes import admin_exception_handlers, admin_routes
from .guard import ADMIN_PREFIX, AdminGuard, GuardConfig
from .wire import render_fault, send_outcome

__all__ = ["LogxApp", "create_app"]

log = logging.getLogger("logx_mock")


_DRAIN_FACTOR = 2


class _Disconnected(Exception):
    """The client went away before sending its whole body."""


class _TimedOut(Exception):
    """The client did not send its whole body in time."""


async def _read_body(
    receive: Receive, limit: int, declared: int | None, timeout: float
) -> tuple[bytes, bool]:
    """The body, or (b"", True) once it is known to exceed `limit`.

    Past the limit nothing more is kept, but up to `_DRAIN_FACTOR` times the
    limit is still read and thrown away: closing on unread data makes the
    kernel reset the connection, and the client would never see its 413.
    The whole body must arrive within `timeout` seconds (slow or endless uploads):
    one deadline for the whole read, not a timer and a task per chunk.
    """
    drain_cap = _DRAIN_FACTOR * limit
    if declared is not None and declared > drain_cap:
        return b"", True
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(timeout):
                return await _read_chunks(receive, limit, drain_cap)
        return await asyncio.wait_for(_read_chunks(receive, limit, drain_cap), timeout)
    except asyncio.TimeoutError:
        raise _TimedOut from None


async def _read_chunks(receive: Receive, limit: int, drain_cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks = []  # past the limit: drop what was kept, keep nothing more
        more = message.get("more_body", False)
        if not more or size > drain_cap:
            return (b"", True) if size > limit else (b"".join(chunks), False)


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name == "content-length":
            return int(value) if value.strip().isdigit() else None
    return None


class LogxApp:
    """The whole server: the events door, and Starlette for `/_mock` and lifespan."""

    def __init__(self, endpoint: Endpoint, admin: ASGIApp) -> None:
        self.endpoint = endpoint
        self.admin = admin
        self.closing = False
        """Set by `shut_down`: the server is stopping."""
        self._reading: set[asyncio.Task[Any]] = set()
        """The requests whose body is still coming in."""

    def shut_down(self) -> None:
        """The server is stopping (Ctrl-C, SIGTERM, `ThreadedServer.stop`): cut every delay
        and hang of this endpoint short, so each request in flight gets at once exactly the
        answer its journal record says (or, for a hang, reset or close, none, as journaled),
        and later ones wait for nothing. Called from the event loop, once per connection
        (see `web.protocol`)."""
        if not self.closing:
            self.closing = True
            self.endpoint.faults.cut_delays_short()
            for task in self._reading:  # a body still coming: nothing is recorded, say so
                task.cancel()

    def __repr__(self) -> str:
        return f"<LogxApp {self.endpoint!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self.admin(scope, receive, send)
            return
        await self._events(scope, receive, send)

    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        config = self.endpoint.config
        task = asyncio.current_task()
        assert task is not None  # an ASGI request always runs in a task
        self._reading.add(task)
        try:
            body, too_large = await _read_body(
                receive, config.max_body_bytes, _content_length(headers), config.body_timeout
            )
        except _Disconnected:
            return
        except asyncio.CancelledError:
            if not self.closing:
                raise
            # Cancelled by shut_down (or uvicorn's graceful timeout) while the body was still
            # coming: nothing was recorded, and the answer says so (not uvicorn's bare 500).
            await send_outcome(send, _stopped())
            return
        except _TimedOut:
            log.info("408: the body did not arrive within %gs; not recorded", config.body_timeout)
            problem_headers, problem_body = problem(
                "timeout",
                408,
                f"the body did not arrive within {config.body_timeout:g}s; nothing was recorded",
            )
            problem_headers.append(("connection", "close"))
            await send_outcome(send, Outcome(408, problem_headers, problem_body))
            return
        finally:
            self._reading.discard(task)
        client = scope.get("client")
        request = CoreRequest(
            method=scope["method"],
            path=scope["path"],
            body=body,
            headers=headers,
            host=next((v for k, v in headers if k == "host"), None),
            peer=client[0] if client else None,
            too_large=too_large,
        )
        outcome = await self.endpoint.handle_async(request)
        if outcome.fault is None:
            await send_outcome(send, outcome)
        else:
            await render_fault(self.endpoint.faults, outcome, receive, send, hurry=self.closing)


def _stopped() -> Outcome:
    headers, body = problem(
        "stopping",
        503,
        "the server stopped before the whole body arrived; nothing was recorded, resend it",
    )
    return Outcome(503, [*headers, ("connection", "close")], body)


def create_app(
    endpoint: Endpoint, *, close_journal: bool = False, guard: GuardConfig | None = None
) -> LogxApp:
    """The ASGI app over `endpoint`; with `close_journal`, lifespan shutdown closes it.

    `guard` protects `/_mock` (Host check always; a token when it has one).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        if close_journal:
            endpoint.journal.close()

    admin = Starlette(
        routes=admin_routes(endpoint),
        lifespan=lifespan,
        exception_handlers=admin_exception_handlers(),
    )
    return LogxApp(endpoint, AdminGuard(admin, guard or GuardConfig()))
