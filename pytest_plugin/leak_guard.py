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
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from mockserver import LogxMockError

from .routes import OPTIMIZELY_HOSTS

__all__ = ["GUARD_INI", "GUARD_OPTION", "LeakError", "leak_guard"]

GUARD_INI = "logx_leak_guard"
GUARD_OPTION = "--no-logx-leak-guard"


class LeakError(LogxMockError, RuntimeError):
    """An attempt to reach an Optimizely host that `logx_mock` does not route.

    Not an `OSError`, so no client mistakes it for a network failure to retry or
    wrap: it reaches the test as it was raised. The plugin's branch of the one tree
    under `mockserver.errors.LogxMockError`.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"logx-mock stopped a connection to {host} before any DNS lookup: logx_mock answers "
            "requests and httpx in this process, and this client is neither (urllib, aiohttp, "
            "a raw socket, ...), so it would have reached the real Optimizely. Use the "
            "logx_server fixture and point the client at it: logx_server.events_url for "
            "events, logx_server.url + '/datafiles/{sdk_key}.json' for datafiles. To let "
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


def _guarding_host(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        _check(host)
        return original(host, *args, **kwargs)

    return guarded


def _guarding_address(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(sock: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if isinstance(address, tuple) and address:
            _check(address[0])
        return original(sock, address, *args, **kwargs)

    return guarded


@contextlib.contextmanager
def leak_guard() -> Iterator[None]:
    """Refuse, with `LeakError`, every resolution of an Optimizely host while in the block."""
    with contextlib.ExitStack() as stack:
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
            original = getattr(socket, name)
            stack.enter_context(mock.patch.object(socket, name, _guarding_host(original)))
        for name in ("connect", "connect_ex"):
            original = getattr(socket.socket, name)
            stack.enter_context(mock.patch.object(socket.socket, name, _guarding_address(original)))
        yield
