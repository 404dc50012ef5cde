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
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from ..endpoint import Endpoint
from ..model import CoreRequest, Outcome
from ..problem import problem
from .admin.datafiles import MAX_DATAFILE_BYTES
from .admin.export import IMPORT_BODY_BYTES
from .admin.routes import admin_exception_handlers, admin_routes
from .bodies import (
    AdminBodies,
    BodyDisconnected,
    BodyTimedOut,
    content_length,
    read_body,
    timeout_outcome,
)
from .guard import ADMIN_PREFIX, AdminGuard, GuardConfig
from .wire import render_fault, send_outcome

__all__ = ["LogxApp", "create_app", "text_headers"]

log = logging.getLogger("logx_mock")


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
        if scope["type"] != "http" or not self.is_events(scope["path"]):
            await self.admin(scope, receive, send)
            return
        await self._events(scope, receive, send)

    @staticmethod
    def is_events(path: str) -> bool:
        """Whether a request to `path` goes to the events door (the Log Endpoint), not the
        admin API."""
        return not (path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"))

    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = text_headers(scope)
        config = self.endpoint.config
        task = asyncio.current_task()
        assert task is not None  # an ASGI request always runs in a task
        self._reading.add(task)
        try:
            body, too_large = await read_body(
                receive, config.max_body_bytes, content_length(headers), config.body_timeout
            )
        except BodyDisconnected:
            return
        except asyncio.CancelledError:
            if not self.closing:
                raise
            # Cancelled by shut_down (or uvicorn's graceful timeout) while the body was still
            # coming: nothing was recorded, and the answer says so (not uvicorn's bare 500).
            await send_outcome(send, _stopped())
            return
        except BodyTimedOut:
            log.info("408: the body did not arrive within %gs; not recorded", config.body_timeout)
            await send_outcome(send, timeout_outcome(config.body_timeout, "nothing was recorded"))
            return
        finally:
            self._reading.discard(task)
        outcome = await self.answer(scope, headers, body, too_large=too_large)
        await self.send(outcome, receive, send)

    async def answer(
        self,
        scope: Scope,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        too_large: bool = False,
    ) -> Outcome:
        """The core's answer to a request to the events door whose body has been read."""
        return await self.endpoint.handle_async(_core_request(scope, headers, body, too_large))

    def answer_soon(
        self,
        scope: Scope,
        body: bytes,
        answer: Callable[[Outcome], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`answer` without a coroutine, for a body read whole: `answer` is called on this
        loop (`loop`, the running one) with the outcome once the request is committed (see
        `Endpoint.handle_soon`)."""
        request = _core_request(scope, text_headers(scope), body, too_large=False)
        self.endpoint.handle_soon(request, answer, loop)

    async def send(self, outcome: Outcome, receive: Receive, send: Send) -> None:
        """Send `outcome` as an ASGI response (an injected fault as the wire shows it)."""
        if outcome.fault is None:
            await send_outcome(send, outcome)
        else:
            await render_fault(self.endpoint.faults, outcome, receive, send, hurry=self.closing)


def text_headers(scope: Scope) -> list[tuple[str, str]]:
    """The request's headers as text, names in lowercase (as the core reads them)."""
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]


def _core_request(
    scope: Scope, headers: list[tuple[str, str]], body: bytes, too_large: bool
) -> CoreRequest:
    client = scope.get("client")
    return CoreRequest(
        method=scope["method"],
        path=scope["path"],
        body=body,
        headers=headers,
        host=next((v for k, v in headers if k == "host"), None),
        peer=client[0] if client else None,
        too_large=too_large,
    )


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
        endpoint.request_lines.flush(now=True)  # every request is answered: sum them all up
        if close_journal:
            endpoint.journal.close()

    admin = Starlette(
        routes=admin_routes(endpoint),
        lifespan=lifespan,
        exception_handlers=admin_exception_handlers(),
    )
    bodies = AdminBodies(
        admin,
        timeout=lambda: endpoint.config.body_timeout,
        limits={
            f"{ADMIN_PREFIX}/datafiles": MAX_DATAFILE_BYTES,
            f"{ADMIN_PREFIX}/import": IMPORT_BODY_BYTES,
        },
    )
    return LogxApp(endpoint, AdminGuard(bodies, guard or GuardConfig()))
