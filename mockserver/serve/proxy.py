"""`serve --proxy-port`: a forward proxy that answers for Optimizely's hosts itself.

An app run with `HTTPS_PROXY=http://127.0.0.1:PORT` (and trusting the logx-mock
CA) sends `CONNECT logx.optimizely.com:443`. The proxy answers 200, terminates
TLS with the server's leaf certificate, and hands the decrypted stream to
uvicorn's HTTP/1.1 protocol (the server port's) running the same app: the
same core, the same journal, and the app's real address as the client (the
TLS transport reports the TCP peer). Absolute-form `http://` requests to those
hosts are served the same way, without TLS.

Nothing is ever forwarded: a `CONNECT` to any other host or port, or a request
for another host, gets 403 and a console line. The mock makes no outbound
connection at all.

Bounded like the server port, with its `ServerLimits`: the first request head
must arrive within `head_timeout` seconds (`--head-timeout`) and fit in
`MAX_HEAD` bytes, the TLS handshake must end within `head_timeout` too, and
anything unparsable gets a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any, cast
from urllib.parse import urlsplit

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ..model import Outcome
from ..problem import problem
from ..web.protocol import MAX_HEAD_BYTES, ServerLimits
from ..web.wire import send_outcome
from .ca import OPTIMIZELY_HOSTS, LeafFiles
from .server import uvicorn_config

__all__ = [
    "HEAD_TIMEOUT",
    "MAX_HEAD",
    "ProxyGate",
    "ProxyListener",
    "proxy_listener",
    "served_authority",
]

log = logging.getLogger("logx_mock")

HEAD_TIMEOUT = ServerLimits().head_timeout
MAX_HEAD = MAX_HEAD_BYTES
_PORTS = {"https": 443, "http": 80}
_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Too Large"}


def served_authority(host: str, port: int | None, scheme: str) -> bool:
    """True when `host:port` is one of Optimizely's hosts on the scheme's standard port."""
    return host.lower().rstrip(".") in OPTIMIZELY_HOSTS and port in (None, _PORTS[scheme])


def _refusal(what: str) -> str:
    return (
        f"logx-mock's proxy refused {what}: it answers only for {', '.join(OPTIMIZELY_HOSTS)} "
        "(port 443 over CONNECT, 80 as http://) and never forwards; exempt other hosts with "
        "NO_PROXY, or send them to a real proxy"
    )


def _split_authority(target: str) -> tuple[str, int | None] | None:
    """`host:port` of a CONNECT target (`[::1]:443` too), or None if it is not one."""
    try:
        parts = urlsplit("//" + target)
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


class ProxyGate:
    """ASGI: serve absolute-form requests for Optimizely's hosts; refuse everything else.

    Runs on plain proxy connections (no CONNECT), where every request names its
    URL in full (`POST http://logx.optimizely.com/v1/events`). The scope is
    rewritten to the origin form the app expects.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __repr__(self) -> str:
        return f"<ProxyGate {self.app!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode("latin-1")
        try:
            url = urlsplit(raw.decode("latin-1"))
            port = url.port
        except ValueError:
            url, port = urlsplit(""), None
        if scope["method"] == "CONNECT" or url.scheme not in ("http", "https") or not url.hostname:
            await _answer(
                send,
                400,
                "proxy",
                "this is logx-mock's forward proxy: send CONNECT host:443 as a connection's first "
                "request, or a full URL (POST http://logx.optimizely.com/v1/events); the server "
                "port answers plain paths",
            )
            return
        if url.scheme != "http" or not served_authority(url.hostname, port, "http"):
            log.warning("%s", _refusal(f"{scope['method']} {url.scheme}://{url.netloc}"))
            await _answer(send, 403, "refused", _refusal(f"{url.scheme}://{url.netloc}"))
            return
        path = url.path or "/"
        inner = dict(scope)
        inner.update(
            path=path,
            raw_path=path.encode("latin-1"),
            query_string=url.query.encode("latin-1"),
        )
        await self.app(inner, receive, send)


async def _answer(send: Send, status: int, kind: str, detail: str) -> None:
    headers, body = problem(kind, status, detail)
    await send_outcome(send, Outcome(status, headers, body))


def _raw_answer(transport: asyncio.Transport, status: int, kind: str, detail: str) -> None:
    """A whole response on a connection no HTTP server has yet: then close it."""
    headers, body = problem(kind, status, detail)
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    transport.write(head.encode("latin-1") + body)
    transport.close()


class _Buffered(asyncio.Protocol):
    """Holds what arrives between the end of the TLS handshake and the HTTP handoff."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class _ProxyConnection(asyncio.Protocol):
    """One client connection: read the first head, then CONNECT, refuse, or hand off."""

    def __init__(self, listener: ProxyListener) -> None:
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, hence a cast, not an isinstance check
        self.transport = cast(asyncio.Transport, transport)
        self.listener.pending.add(self)
        self.timer = self.loop.call_later(self.listener.head_timeout, self._timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _done(self) -> None:
        self.listener.pending.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        assert self.transport is not None
        self._done()
        detail = f"the request head did not arrive within {self.listener.head_timeout:g}s"
        _raw_answer(self.transport, 408, "timeout", detail)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._done()
                detail = f"the request head is larger than {MAX_HEAD} bytes"
                _raw_answer(self.transport, 431, "proxy", detail)
            return
        self._done()
        line = bytes(self.buffer[: self.buffer.find(b"\r\n")]).decode("latin-1")
        method, _, rest = line.partition(" ")
        if method != "CONNECT":
            self._hand_off(self.transport, self.listener.plain, bytes(self.buffer))
            return
        self._connect(rest.rpartition(" ")[0], leftover=len(self.buffer) > end + 4)

    def _connect(self, target: str, *, leftover: bool) -> None:
        assert self.transport is not None
        authority = _split_authority(target)
        if authority is None or not served_authority(*authority, "https"):
            log.warning("%s", _refusal(f"CONNECT {target}"))
            _raw_answer(self.transport, 403, "refused", _refusal(f"CONNECT {target}"))
            return
        if leftover:
            detail = "send the TLS handshake only after the proxy's 200 answer to CONNECT"
            _raw_answer(self.transport, 400, "proxy", detail)
            return
        self.transport.pause_reading()  # nothing may reach this protocol once TLS starts
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        task = self.loop.create_task(self._start_tls(self.transport, authority[0]))
        self.listener.tasks.add(task)
        task.add_done_callback(self.listener.tasks.discard)

    async def _start_tls(self, transport: asyncio.Transport, host: str) -> None:
        held = _Buffered()
        try:
            secure = await self.loop.start_tls(
                transport,
                held,
                self.listener.tls,
                server_side=True,
                ssl_handshake_timeout=self.listener.head_timeout,
            )
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.warning(
                "proxy: TLS for %s failed (%s): the app must trust the logx-mock CA "
                "(`logx-mock ca` shows how)",
                host,
                exc,
            )
            transport.abort()
            return
        if secure is None or held.lost:  # the client left during the handshake
            transport.close()
            return
        self._hand_off(secure, self.listener.inner, bytes(held.data))

    def _hand_off(self, transport: asyncio.Transport, config: uvicorn.Config, data: bytes) -> None:
        """Let uvicorn's HTTP/1.1 protocol (the one `config` names) serve the rest of the
        connection."""
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config,
            server_state=self.listener.server_state,
            app_state=self.listener.app_state,
            _loop=self.loop,
        )
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        if data:
            protocol.data_received(data)


class ProxyListener:
    """The proxy port, served by the uvicorn server's own event loop and connection set.

    `inner` serves decrypted CONNECT streams; `plain` (the same app behind
    `ProxyGate`) serves absolute-form requests. Both share the server's
    `server_state`, so its shutdown closes proxied connections too.
    """

    def __init__(
        self,
        sock: socket.socket,
        inner: uvicorn.Config,
        plain: uvicorn.Config,
        tls: ssl.SSLContext,
        *,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        for config in (inner, plain):
            if not config.loaded:
                config.load()
        self.sock = sock
        self.inner = inner
        self.plain = plain
        self.tls = tls
        self.head_timeout = head_timeout
        self.pending: set[_ProxyConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server_state: Any = None
        self.app_state: dict[str, Any] = {}

    def __repr__(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"<ProxyListener {host}:{port}>"

    async def start(self, server: uvicorn.Server) -> asyncio.Server:
        """Start accepting on the proxy socket inside `server`'s loop."""
        self.server_state = server.server_state
        self.app_state = server.lifespan.state
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _ProxyConnection(self), sock=self.sock)

    def close(self) -> None:
        """Drop connections that have not sent a whole head yet (the rest are uvicorn's)."""
        for connection in list(self.pending):
            connection._done()
            if connection.transport is not None:
                connection.transport.close()
        for task in self.tasks:
            task.cancel()


def proxy_listener(
    sock: socket.socket, app: ASGIApp, leaf: LeafFiles, *, limits: ServerLimits | None = None
) -> ProxyListener:
    """The proxy for `app` on `sock`, terminating TLS with `leaf`, bounded by the server
    port's `limits` (its head timeout also bounds the CONNECT head and the TLS handshake).

    A decrypted CONNECT stream is parsed exactly as the server port parses requests. Plain
    proxy requests go to h11 instead: it keeps the absolute-form target whole, which the
    gate needs to see the host (httptools keeps only its path).
    """
    limits = limits or ServerLimits()
    return ProxyListener(
        sock,
        uvicorn_config(app, limits=limits),  # type: ignore[arg-type]
        uvicorn_config(
            ProxyGate(app),  # type: ignore[arg-type]
            limits=limits,
            http="h11",
            h11_max_incomplete_event_size=MAX_HEAD,
        ),
        leaf.server_context(),
        head_timeout=limits.head_timeout,
    )
