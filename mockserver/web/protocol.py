"""uvicorn's httptools protocol with a bound on the request head.

httptools (the C parser `uvicorn[standard]` brings) has no limit of its own: a
client sending headers forever, a byte at a time or all at once, would grow the
server's memory without end (h11 has `max_incomplete_event_size`; httptools has
nothing like it). This subclass counts the head as it arrives and answers 431
with a problem body once it passes `MAX_HEAD_BYTES`, then closes the connection.

Counting is exact where the parser tells us (the URL fragments and each complete
header). A head still open at the end of a read counts every byte of that read
(unless a pipelined message ended in it: then the rest is counted by the next
read), so at most `MAX_HEAD_BYTES` plus one read is ever held for one head.

It also bounds time and connections (`ServerLimits`), against slowloris: a head
must arrive whole within `head_timeout` of the connection opening (or of the last
answer on a kept-alive one), else the connection is closed (with a 408 when part
of a head came); idle kept-alive connections close after uvicorn's keep-alive
timeout (`idle_timeout`); and past `max_connections` open connections, a new one
gets a 503 problem to its request, and only `shed_timeout` to send its head, so
held-open connections cannot take every file descriptor.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from ..errors import ConfigError
from ..model import Outcome
from ..problem import problem
from .app import LogxApp
from .wire import has_content_length, send_outcome

__all__ = [
    "MAX_HEAD_BYTES",
    "BoundedHttpToolsProtocol",
    "LimitedConfig",
    "ServerLimits",
    "default_max_connections",
]

MAX_HEAD_BYTES = 64 * 1024
"""The request line plus all headers; a real SDK's head is well under 2 KiB."""


def default_max_connections() -> int:
    """Half the process's file-descriptor limit (at most 1,024): the other half is left for
    the journal, logs, and connections accepted while the server sheds load."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(8, min(1024, soft // 2))


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """How long a connection may take to send a head or stay idle, and how many are served."""

    head_timeout: float = 10.0
    """Seconds for a whole request head to arrive (nginx's client_header_timeout, shorter)."""
    idle_timeout: float = 5.0
    """Seconds a kept-alive connection may wait for its next request (uvicorn's keep-alive)."""
    max_connections: int = field(default_factory=default_max_connections)
    """Open connections served; past that, a 503 problem (`Retry-After: 1`)."""
    shed_timeout: float = 1.0
    """Seconds a connection over `max_connections` gets to send the head its 503 answers."""

    @property
    def hard_limit(self) -> int:
        """Past this many open connections, a new one is closed at once, unanswered."""
        return self.max_connections + max(16, self.max_connections // 4)

    def __post_init__(self) -> None:
        for name in ("head_timeout", "idle_timeout", "shed_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError("must be from 0 to 3600 seconds", setting=name)
        if self.max_connections < 1:
            raise ConfigError("must be at least 1", setting="max_connections")


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config with `ServerLimits` for our protocol (a module-level class: the
    workers of `serve --workers` receive it pickled)."""

    def __init__(self, app: Any, *, limits: ServerLimits, **settings: Any) -> None:
        super().__init__(app, timeout_keep_alive=limits.idle_timeout, **settings)  # type: ignore[arg-type]
        self.limits = limits


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past the bound."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that answers 431 to a head over `MAX_HEAD_BYTES`, and applies
    `ServerLimits` (from a `LimitedConfig`; the defaults otherwise)."""

    head_limit = MAX_HEAD_BYTES
    _head_bytes = 0
    _in_head = False
    _began = False
    _ended = False
    _head_timer: asyncio.TimerHandle | None = None
    _head_later = 0.0
    """Seconds the head still gets when the timer finds one begun (see `_after_answer`)."""
    _over_capacity = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = getattr(self.config, "limits", None)
        self.limits = found if isinstance(found, ServerLimits) else _DEFAULT_LIMITS
        state = self.server_state
        waiting = getattr(state, "logx_waiting", None)
        if waiting is None:
            waiting = state.logx_waiting = {}  # type: ignore[attr-defined]
        self._waiting: dict[BoundedHttpToolsProtocol, None] = waiting
        """This server's connections waiting for a head, oldest first (kept on its state)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        if len(self.connections) > limits.max_connections and not self._evict_oldest_waiting():
            if len(self.connections) > limits.hard_limit:
                self.transport.close()  # not even a 503: keep descriptors for the served
                return
            self._over_capacity = True
        self._await_head(limits.shed_timeout if self._over_capacity else limits.head_timeout)

    def _evict_oldest_waiting(self) -> bool:
        """Make room by closing the connection that has waited longest for a head (a slow
        one, most likely an attacker's): a client that sends its request at once is served."""
        for other in self._waiting:
            if other is not self:
                other._head_timed_out()
                return True
        return False

    def shutdown(self) -> None:
        """The server is stopping: first tell the app, so the delays and hangs of requests in
        flight end now and their answers go out before uvicorn's graceful timeout cancels
        them (a cancelled request would get a 500 the journal never recorded)."""
        app = self.app
        while not isinstance(app, LogxApp) and hasattr(app, "app"):
            app = app.app  # through uvicorn's wrappers, if any
        if isinstance(app, LogxApp):
            app.shut_down()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """uvicorn's, with one timer where it arms a keep-alive timer and we a head timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        self._after_answer()

    def _after_answer(self) -> None:
        """A kept-alive connection is closed if it sends nothing within the idle timeout,
        and its next head must arrive within the head timeout: one timer, at the earlier;
        if a head has begun by then, the timer waits the rest of the head's time."""
        limits = self.limits
        first = min(limits.idle_timeout, limits.head_timeout)
        self._await_head(first)
        self._head_later = limits.head_timeout - first

    def _await_head(self, seconds: float) -> None:
        if self._head_timer is not None:
            self._stop_head_timer()
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)
        self._head_later = 0.0
        self._waiting[self] = None

    def _stop_head_timer(self) -> None:
        self._waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        if self._in_head and self._head_later > 0:
            self._await_head(self._head_later)
            return
        self._stop_head_timer()
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy or self.transport.is_closing():
            return  # a request is being answered (its body has its own timeout)
        if self._in_head:
            self._send_problem(
                408,
                "Request Timeout",
                "head_timeout",
                f"the request head did not arrive within {self.limits.head_timeout:g}s",
            )
        else:
            self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if self._over_capacity:
            app = _OverCapacity(self.limits.max_connections)
        elif (
            isinstance(app, LogxApp)
            and cycle.scope["method"] == "POST"
            and app.is_events(cycle.scope["path"])
        ):
            # The body most likely came in this very read: look once the parser is done.
            self.loop.call_soon(self._answer_whole, cycle, app)
            return
        super()._start_asgi_task(cycle, app)

    def _answer_whole(self, cycle: RequestResponseCycle, app: LogxApp) -> None:
        """The events door's short way, for a POST whose body had all arrived by now (an SDK
        batch that came in a read or two: nearly every one): no task, no coroutine, no ASGI
        messages. The body is taken from the cycle as it is, the core judges it here, and
        the journal's commit calls `_answered` back on this loop.

        Anything else goes through `LogxApp` as ASGI, in a task as uvicorn runs any app: a
        body still coming (read with its size limit and timeout), `Expect: 100-continue`, a
        body over the size limit; and, once committed, an injected fault or a connection
        whose writes are paused or gone. An error here is raised in such a task too, so
        uvicorn logs it and answers 500 as for any app."""
        body = cycle.body
        if (
            cycle.more_body
            or cycle.waiting_for_100_continue
            or len(body) > app.endpoint.config.max_body_bytes
        ):
            self._run_asgi(cycle, app)
            return
        cycle.body = bytearray()  # taken, as `receive` takes it: a later `receive` (a
        cycle.message_event.clear()  # hang's) waits for the client to go away
        try:
            app.answer_soon(
                cast(Scope, cycle.scope),
                bytes(body),
                lambda out: self._answered(cycle, app, out),
                self.loop,
            )
        except Exception as exc:
            self._run_asgi(cycle, _Raising(exc))

    def _answered(self, cycle: RequestResponseCycle, app: LogxApp, outcome: Outcome) -> None:
        try:
            if outcome.fault is not None or cycle.flow.write_paused or cycle.disconnected:
                self._run_asgi(cycle, _Sending(app, outcome))
            else:
                _write(cycle, outcome)
        except Exception as exc:
            self._run_asgi(cycle, _Raising(exc))

    def _run_asgi(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Run `app` for this request in a task, as uvicorn runs any app."""
        HttpToolsProtocol._start_asgi_task(self, cycle, app)

    def on_message_begin(self) -> None:
        self._head_bytes, self._in_head, self._began = 0, True, True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url  # uvicorn's on_url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        name = name.lower()  # uvicorn's on_header, from here
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ended = True
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.head_limit:
            raise _HeadTooLarge

    def data_received(self, data: bytes) -> None:
        carried, before = self._in_head, self._head_bytes
        self._began = self._ended = False
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._send_431()
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if not self._in_head:
            return
        if carried and not self._began:  # the head was open before this read: all of it is head
            self._head_bytes = before + len(data)
        elif not self._ended:  # the head began in this read and no message ended in it
            self._head_bytes = max(self._head_bytes, len(data))
        if self._head_bytes > self.head_limit:
            self._send_431()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def _send_431(self) -> None:
        self._send_problem(
            431,
            "Request Header Fields Too Large",
            "head_too_large",
            f"the request head (request line and headers) is over {self.head_limit:,} bytes; "
            "send fewer or shorter headers",
        )

    def _send_problem(self, status: int, reason: str, kind: str, detail: str) -> None:
        """Answer before any request reached the app, and close."""
        headers, body = problem(kind, status, detail)
        lines = [f"HTTP/1.1 {status} {reason}\r\n".encode()]
        for name, value in [*headers, ("content-length", str(len(body))), ("connection", "close")]:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        self._in_head = False
        self.transport.close()


_DEFAULT_LIMITS = ServerLimits()


class _Sending:
    """The ASGI app that sends an outcome already decided (a fault, or to a connection
    whose writes are paused): `LogxApp.send`, in a task uvicorn runs."""

    __slots__ = ("app", "outcome")

    def __init__(self, app: LogxApp, outcome: Outcome) -> None:
        self.app, self.outcome = app, outcome

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app.send(self.outcome, receive, send)


class _Raising:
    """The ASGI app that raises what the short way met, so uvicorn answers 500 and logs
    it, as for an error in any app."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise self.error


def _write(cycle: RequestResponseCycle, outcome: Outcome) -> None:
    """What `send_outcome` sends through uvicorn's `send`, in one write: the status line,
    uvicorn's default headers (`date`, `server`), ours, a `content-length` unless it is a
    bodyless 204, and `connection: close` when the connection will not be kept."""
    keep_alive = cycle.keep_alive
    body = outcome.body
    key = None if body else (outcome.status, tuple(outcome.headers), keep_alive)
    found = _TAILS.get(key) if key is not None else None
    if found is None:
        found = _tail(outcome, keep_alive)
        if key is not None and len(_TAILS) < _MAX_TAILS:
            _TAILS[key] = found
    tail, keep_alive = found
    cycle.response_started = True
    default = cycle.default_headers
    cached = _defaults
    written = cached[1] if cached[0] is default else _default_head(default)
    cycle.transport.write(b"".join((STATUS_LINE[outcome.status], written, tail, body)))
    cycle.response_complete = True
    cycle.keep_alive = keep_alive
    cycle.message_event.set()
    if not keep_alive:
        cycle.transport.close()
    cycle.on_response()


_defaults: tuple[object, bytes] = (None, b"")
"""uvicorn's default headers last written (a new list each second: the date), as bytes."""


def _default_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    global _defaults
    written = b"".join(b"%s: %s\r\n" % pair for pair in headers)
    _defaults = (headers, written)
    return written


_TAILS: dict[tuple[object, ...], tuple[bytes, bool]] = {}
"""The head after uvicorn's headers, for answers with no body (nearly all: a 204), built once
for each status, headers and keep-alive; at most `_MAX_TAILS` (an echoed `Origin` makes a
new one each)."""
_MAX_TAILS = 64


def _tail(outcome: Outcome, keep_alive: bool) -> tuple[bytes, bool]:
    """Our headers, `content-length`, `connection: close` when the connection will not be
    kept, and the blank line; and whether the connection is kept.

    Our header values are our own text, or an `Origin` echoed from a request head that
    httptools parsed (which holds no CR or LF), so none can split the response."""
    text = []
    for name, value in outcome.headers:
        if name == "connection" and "close" in value.lower():
            keep_alive = False
        text.append(f"{name}: {value}\r\n")
    if has_content_length(outcome):
        text.append(f"content-length: {len(outcome.body)}\r\n")
    if not keep_alive and not any(line.startswith("connection: ") for line in text):
        text.append("connection: close\r\n")
    text.append("\r\n")
    return "".join(text).encode("latin-1"), keep_alive


class _OverCapacity:
    """The ASGI app a connection over `max_connections` gets: a 503 that says why."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers, body = problem(
            "over_capacity",
            503,
            f"the server already has {self.limit:,} connections open, the most it serves "
            "(--max-connections); retry in a moment, or raise the limit",
        )
        headers += [("retry-after", "1"), ("connection", "close")]
        await send_outcome(send, Outcome(503, headers, body))
