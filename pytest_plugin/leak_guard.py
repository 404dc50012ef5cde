"""The leak guard: while `logx_mock` is active, nothing else reaches the Optimizely hosts.

`logx_mock` answers `requests` and httpx in process. Any other client (urllib,
aiohttp, a raw socket) would look the real host up and send it the test's events.
The guard stops such an attempt at name resolution, before any DNS query or
connection: every resolver in the standard library, and so every client built on it,
passes through `socket.getaddrinfo` (`create_connection`, asyncio's
`loop.getaddrinfo`, aiohttp's default resolver), `gethostbyname(_ex)`, or a
socket's `connect` with a host name. The standard library offers no hook for this,
and no library guards by host name, hence the patches; each one only adds a check
in front of the original. Subprocesses are not covered.

A thread the test started and left running outlives `logx_mock`: the Optimizely SDK's
event processor, when the test neither closes the client nor waits for its events,
sends a moment after the test ended, when `requests` is no longer routed. So the
session keeps a second, narrower guard (`late_guard`, on from configure to unconfigure):
it refuses the Optimizely hosts to such threads only (`threads_outliving`), naming the
test that started them; every other thread reaches them as without logx-mock.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from mockserver import LogxMockError

from .routes import OPTIMIZELY_HOSTS

__all__ = [
    "GUARD_INI",
    "GUARD_OPTION",
    "LeakError",
    "late_guard",
    "late_refusals",
    "leak_guard",
    "threads_outliving",
]

GUARD_INI = "logx_leak_guard"
GUARD_OPTION = "--no-logx-leak-guard"


class LeakError(LogxMockError, RuntimeError):
    """An attempt to reach an Optimizely host that `logx_mock` does not route.

    Not an `OSError`, so no client mistakes it for a network failure to retry or
    wrap: it reaches the test as it was raised. The plugin's branch of the one tree
    under `mockserver.errors.LogxMockError`.
    """

    def __init__(self, host: str, *, late: tuple[str, str] | None = None) -> None:
        """`late`: (the thread's name, the test that started it) for a thread that
        outlived its test's `logx_mock`."""
        self.host = host
        self.late = late
        if late is None:
            why = (
                "logx_mock answers requests and httpx in this process, and this client is "
                "neither (urllib, aiohttp, a raw socket, ...), so it would have reached the "
                "real Optimizely. Use the logx_server fixture and point the client at it: "
                "logx_server.events_url for events, logx_server.url + "
                "'/datafiles/{sdk_key}.json' for datafiles."
            )
        else:
            why = (
                f"thread {late[0]!r} was started by {late[1]}, which used logx_mock, and it "
                "outlived the test: logx_mock ended with the test, so this would have reached "
                "the real Optimizely. The Optimizely SDK sends from its own thread: before "
                "the test ends, call optimizely_client.close() (it flushes the events) or "
                "logx_mock.wait_for_events(...)."
            )
        super().__init__(
            f"logx-mock stopped a connection to {host} before any DNS lookup: {why} To let "
            f"such connections through, run pytest with {GUARD_OPTION} or set "
            f"{GUARD_INI} = false in the ini file (README: #the-leak-guard)."
        )


def _name(host: Any) -> str | None:
    """The host as a lower-case name without the root dot, when it is a name at all."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return host.lower().rstrip(".") if isinstance(host, str) else None


def _check(host: Any) -> None:
    __tracebackhide__ = True
    name = _name(host)
    if name in OPTIMIZELY_HOSTS:
        raise LeakError(name)


_outliving: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()
"""Threads started during a `logx_mock` test that were still running after it, and that
test's id (a thread that ends drops out)."""


_refused_late: dict[str, None] = {}
"""One line per (test, thread, host) `late_guard` refused, in order, until `late_refusals`."""


def _check_late(host: Any) -> None:
    __tracebackhide__ = True
    test = _outliving.get(threading.current_thread()) if _outliving else None
    if test is not None:
        name = _name(host)
        if name in OPTIMIZELY_HOSTS:
            thread = threading.current_thread().name
            line = f"{test}: thread {thread!r} tried to reach {name} after the test ended"
            _refused_late[line] = None
            raise LeakError(name, late=(thread, test))


def late_refusals() -> list[str]:
    """What `late_guard` refused since the last call (the plugin lists it after the run)."""
    lines = list(_refused_late)
    _refused_late.clear()
    return lines


def _guarding_host(check: Callable[[Any], None], original: Callable[..., Any]) -> Any:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        check(host)
        return original(host, *args, **kwargs)

    return guarded


def _guarding_address(check: Callable[[Any], None], original: Callable[..., Any]) -> Any:
    def guarded(sock: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if isinstance(address, tuple) and address:
            check(address[0])
        return original(sock, address, *args, **kwargs)

    return guarded


@contextlib.contextmanager
def _guarding(check: Callable[[Any], None]) -> Iterator[None]:
    """Put `check(host)` in front of every resolver and every `connect` while in the block."""
    with contextlib.ExitStack() as stack:
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
            original = getattr(socket, name)
            stack.enter_context(mock.patch.object(socket, name, _guarding_host(check, original)))
        for name in ("connect", "connect_ex"):
            original = getattr(socket.socket, name)
            guarded = _guarding_address(check, original)
            stack.enter_context(mock.patch.object(socket.socket, name, guarded))
        yield


def leak_guard() -> contextlib.AbstractContextManager[None]:
    """Refuse, with `LeakError`, every resolution of an Optimizely host while in the block."""
    return _guarding(_check)


def late_guard() -> contextlib.AbstractContextManager[None]:
    """Refuse the Optimizely hosts to the threads `threads_outliving` named, while in the
    block (the plugin holds it for the whole session)."""
    return _guarding(_check_late)


@contextlib.contextmanager
def threads_outliving(test: str) -> Iterator[None]:
    """Name `test` as the starter of every thread that started in the block and still runs
    at its end, for `late_guard` to refuse."""
    before = set(threading.enumerate())
    try:
        yield
    finally:
        for thread in threading.enumerate():
            if thread not in before:
                _outliving[thread] = test
