"""Running the app on a real socket: in a background thread, or in the foreground.

The server binds the socket itself (so port 0 works and the URL is known
before uvicorn starts), hands it to uvicorn, and waits on a readiness event set
by uvicorn's own startup: never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from types import FrameType, TracebackType
from typing import Protocol

import uvicorn

from ..endpoint import EVENTS_PATH, Endpoint
from ..journal.memory import MemoryJournal
from ..web.app import LogxApp, create_app
from ..web.guard import GuardConfig
from ..web.protocol import BoundedHttpToolsProtocol, LimitedConfig, ServerLimits

__all__ = [
    "YOUNG_COLLECTION_THRESHOLD",
    "ReadyServer",
    "ThreadedServer",
    "bind_socket",
    "freeze_startup_heap",
    "listening_twin",
    "stopped_by_signals",
    "uvicorn_config",
]


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Net new container objects between two collections of the youngest generation (CPython's
default is 700). A request's objects die by reference counting as soon as it is answered;
at 700, `serve` collected every few requests, walking the ones in flight each time (~5 % of
the event loop's samples in py-spy --native; `--memory`'s p99 for one impression 5.8 ms, 4.1
at 10,000). At 50,000, `--memory` on batches of 100 events paused longer: p99 76 ms, where
700 and 10,000 gave 45-49."""


def freeze_startup_heap() -> None:
    """Put what the process made to start (modules, the app, the journal) out of the cycle
    collector's sight, once, just before serving, and collect the young generation less
    often (`YOUNG_COLLECTION_THRESHOLD`).

    A full collection walks every tracked object; in `serve` most of them are the
    imports, which never die. Frozen, they are skipped: under load a full collection
    went from ~21 ms to ~3 ms (benchmarks/NOTES.md), which is what the p99 sees. Only
    for processes that serve until they end (`serve`, its workers), never a library user's."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on (host, port); IPv6 when the host is an IPv6 address.

    `reuse_port` (`serve --workers`): `SO_REUSEPORT`, so each worker can listen on a twin of
    it (`listening_twin`) and the kernel spreads the connections over them. A port another
    socket listens on is refused all the same, even one that would share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if reuse_port and port:
            _bound(family, (host, port), reuse_port=False).close()  # taken by anyone?
        sock = _bound(family, (host, port), reuse_port=reuse_port)
    except OSError as exc:
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another port, or 0 for any"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def listening_twin(sock: socket.socket) -> socket.socket:
    """Another listening socket on the address of `sock` (made with `reuse_port`): the
    kernel hands each new connection to one of them, by a hash of its addresses."""
    twin = _bound(sock.family, sock.getsockname(), reuse_port=True)
    twin.listen(2048)
    twin.set_inheritable(True)
    return twin


def _bound(family: int, address: tuple[object, ...], *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_config(
    app: LogxApp, *, limits: ServerLimits | None = None, **overrides: object
) -> uvicorn.Config:
    """The uvicorn settings every logx-mock server uses.

    uvicorn's access log is off: it would print full client addresses, which
    anonymization forbids. The endpoint logs its own line with the stored address.
    uvicorn's proxy headers are off too: by default it would believe
    `X-Forwarded-For` from 127.0.0.1, and only `--trust-proxy` may decide that.
    HTTP is parsed by httptools on uvloop (`uvicorn[standard]`), in our subclass that
    bounds a request's head: a header flood gets a 431, never unbounded memory; and
    `limits` bound how long a head and an idle connection may take, and how many
    connections are served (slowloris).
    """
    settings: dict[str, object] = {
        "http": BoundedHttpToolsProtocol,
        "loop": "uvloop",
        "access_log": False,
        "proxy_headers": False,
        "lifespan": "on",
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
    }
    settings.update(overrides)
    return LimitedConfig(app, limits=limits or ServerLimits(), **settings)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Serve in the foreground until Ctrl-C (SIGINT) or SIGTERM, then leave the block quietly.

    uvicorn shuts down gracefully on either signal, then raises it again once it is done.
    Python turns SIGINT into `KeyboardInterrupt`; SIGTERM's default would end the process
    there, before the last log lines and the closing message, with status -15. Here SIGTERM
    raises `KeyboardInterrupt` too, and both end the block: `serve` exits 0 either way."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class SideListener(Protocol):
    """Another port served by the same loop and app (the forward proxy)."""

    async def start(self, server: uvicorn.Server) -> asyncio.Server: ...

    def close(self) -> None: ...


class ReadyServer(uvicorn.Server):
    """uvicorn.Server that reports the end of its startup through an event, and serves
    `side` listeners beside its own socket (closed with it)."""

    def __init__(self, config: uvicorn.Config, *, side: Sequence[SideListener] = ()) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.side = tuple(side)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
            if self.started:
                for listener in self.side:
                    self.servers.append(await listener.start(self))
        finally:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.side:
            listener.close()
        await super().shutdown(sockets)
        # uvicorn re-raises SIGTERM once it has shut down, which ends the process at once:
        # write the request lines still queued for the log (serve logs off the loop) first.
        for handler in logging.getLogger("logx_mock").handlers:
            handler.flush()


class ThreadedServer:
    """A real uvicorn server on 127.0.0.1 in a background thread.

    >>> with ThreadedServer() as server:
    ...     requests.post(server.events_url, json=batch)
    """

    def __init__(
        self,
        endpoint: Endpoint | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        guard: GuardConfig | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.endpoint = endpoint or Endpoint(MemoryJournal())
        self.guard = guard
        self.limits = limits
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: ReadyServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = f"on {self.url}" if self._thread else "stopped"
        return f"<ThreadedServer {state}>"

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:53411`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def events_url(self) -> str:
        """The Log Endpoint URL to give clients instead of logx.optimizely.com's."""
        return self.url + EVENTS_PATH

    def start(self) -> ThreadedServer:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this ThreadedServer is already running; call stop() first")
        sock = bind_socket(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        app = create_app(self.endpoint, guard=self.guard)
        self._server = ReadyServer(uvicorn_config(app, limits=self.limits))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="logx-server", daemon=True
        )
        self._thread.start()
        self._server.ready.wait()
        if not self._server.started:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the logx-mock server failed to start; see the log above")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; idempotent."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join()
        self._thread = None
        self._server = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
