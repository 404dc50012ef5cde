"""The respx door: routes for the Optimizely hosts, answered by the core.

Only `logx.optimizely.com` and `eu.logx.optimizely.com` (events) and
`cdn.optimizely.com` and `config.optimizely.com` (datafiles) are routed. Any other
request is left to the user's own respx routers when there are any, and
otherwise passes through to the network untouched.

respx mocks httpcore, below httpx's own transport: a request is turned into an httpcore
request, which respx turns back into an httpx request for the router, and the answer
goes the same way back, which cost more than the core's whole work (benchmarks/NOTES.md,
session 6). So while a logx router runs, an httpx client about to send a request for an
Optimizely host through httpx's own transport hands it to the router directly
(`_shortcut`), when that router is the one respx would ask first and its route is its
own: the same router answers the same request, records the same call, and every other
request takes respx's way.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import httpx
import respx

from mockserver import DATAFILE_HOSTS, Endpoint

from .transport import render, render_async, to_core

__all__ = ["LOGX_HOSTS", "OPTIMIZELY_HOSTS", "logx_router"]

_Answer = Callable[[httpx.Request], Any]

LOGX_HOSTS = ("logx.optimizely.com", "eu.logx.optimizely.com")
OPTIMIZELY_HOSTS = (*LOGX_HOSTS, *DATAFILE_HOSTS)
"""Every host the in-process doors answer: events and datafiles."""


def _other_routers(router: respx.MockRouter) -> bool:
    """Whether another router is started beside ours on the mocker ours uses: respx asks
    each in turn (`router.Mocker`, set when a router starts), so a request ours leaves
    unmatched is theirs to answer."""
    mocker = router.Mocker
    return mocker is not None and any(r is not router for r in mocker.routers)


_in_async_client: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "logx_in_async_client", default=False
)


class _LogxRouter(respx.MockRouter):
    """Tells the side effect whether it serves an async client, so delays can await.

    respx awaits an awaitable side-effect result only on its async path; on the
    sync path the same side effect must answer synchronously. While started, it may be
    handed requests directly (`_shortcut`)."""

    def __init__(self, **settings: Any) -> None:
        # `settings`: respx's own, as `router(...)` passes them to a copy of the router.
        super().__init__(**{"assert_all_called": False, "assert_all_mocked": True, **settings})
        self.direct = _Direct(self)
        self.logx_route: _LogxRoute | None = None

    def start(self) -> None:
        super().start()
        _started.append(self)
        _shortcut(install=True)

    def stop(self, clear: bool = True, reset: bool = True, quiet: bool = False) -> None:
        try:
            super().stop(clear=clear, reset=reset, quiet=quiet)
        finally:
            if self in _started:
                _started.remove(self)
            if not _started:
                _shortcut(install=False)

    def answers_first(self) -> bool:
        """Whether respx would hand an Optimizely host's request to this router's own
        route: the router is the first its mocker asks, and the first route is the logx
        route, unmocked by the user (which answers every such request itself: it never
        passes one on)."""
        mocker, route = self.Mocker, self.logx_route
        return (
            mocker is not None
            and bool(mocker.routers)
            and mocker.routers[0] is self
            and route is not None
            and bool(self.routes)
            and self.routes[0] is route
            and route.answers_itself()
        )

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        token = _in_async_client.set(True)
        try:
            return await super().async_handler(request)
        finally:
            _in_async_client.reset(token)


class _LogxRoute(respx.Route):
    """The route for the Optimizely hosts: the core answers every request it matches.

    The answer is given here, not through a respx side effect: respx inspects a side
    effect's signature and type on every call, which cost a twentieth of the door's time
    (benchmarks/NOTES.md). An error is recorded as respx records a side effect's (the
    call, without a response) and raised to the client; a user who mocks this route
    (`router["logx"].respond(...)` or `.mock(side_effect=...)`) gets respx's own behaviour.
    """

    def __init__(self, router: respx.MockRouter, answer: _Answer) -> None:
        super().__init__(host__in=OPTIMIZELY_HOSTS)
        self._router = router
        self._answer = answer

    def answers_itself(self) -> bool:
        """Not mocked by the user (no side effect, response or pass-through set)."""
        return self._side_effect is None and self._return_value is None and not self._pass_through

    def resolve(self, request: httpx.Request, **kwargs: Any) -> Any:
        if self._side_effect is not None or self._return_value is not None:
            return super().resolve(request, **kwargs)
        try:
            return self._answer(request)  # async: respx awaits it, and records an error
        except Exception:
            self._router.record(request, response=None, route=self)
            raise


def logx_router(endpoint: Endpoint) -> respx.MockRouter:
    """A respx router (not yet started) for the Optimizely hosts, bound to `endpoint`."""
    router = _LogxRouter()

    async def answer_async(request: httpx.Request) -> httpx.Response:
        outcome = await endpoint.handle_async(to_core(request, await request.aread()))
        return await render_async(endpoint.faults, outcome, request)

    def answer(request: httpx.Request) -> Any:
        if _in_async_client.get():
            return answer_async(request)  # respx's async path awaits it
        outcome = endpoint.handle(to_core(request, request.read()))
        return render(endpoint.faults, outcome, request)

    def elsewhere(request: httpx.Request) -> httpx.Request | None:
        # None lets the user's own routers answer; the request itself passes through.
        return None if _other_routers(router) else request

    router.logx_route = _LogxRoute(router, answer)
    router.add(router.logx_route, name="logx")
    router.route(name="not-logx").mock(side_effect=elsewhere)
    return router


class _Direct(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A router as an httpx transport: the request goes to it as respx's mocker hands it
    over (its body read first, so routes can match on it), the router's answer comes back."""

    def __init__(self, router: _LogxRouter) -> None:
        self._router = router

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self._router.handler(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await self._router.async_handler(request)


_started: list[_LogxRouter] = []
"""The logx routers started, in order."""
_PLAIN_TRANSPORTS = (
    (httpx.Client, httpx.HTTPTransport),
    (httpx.AsyncClient, httpx.AsyncHTTPTransport),
)
"""Each client class, and the transport of its own whose requests respx's mocker answers."""
_SHORTCUT_MARK = "_logx_shortcut"
_CHOICE = "_transport_for_url"
"""The client method that picks a transport for a URL (respx's `httpx` mocker patches it too)."""
_originals: dict[type, Any] = {}


def _answering() -> _LogxRouter | None:
    """The logx router respx would hand an Optimizely host's request to, when it is one."""
    for router in _started:
        if router.answers_first():
            return router
    return None


def _shortcut(*, install: bool) -> None:
    """Put the shortcut in front of each client's choice of transport (once), or take it
    away (when it is still the one in place: one put over it later stays in force, and
    ours, left below it, passes everything on while no logx router runs)."""
    for client, plain in _PLAIN_TRANSPORTS:
        current = client.__dict__.get(_CHOICE)
        if current is None:
            continue  # an httpx without the method: respx's way only
        ours = getattr(current, _SHORTCUT_MARK, False)
        if install and not ours:
            _originals[client] = current
            setattr(client, _CHOICE, _choose_transport(current, plain))
        elif not install and ours and client in _originals:
            setattr(client, _CHOICE, _originals.pop(client))


def _choose_transport(original: Callable[..., Any], plain: type) -> Callable[..., Any]:
    """A client's choice of transport with the shortcut in front: `original`'s choice,
    unless that is the client's own `plain` transport, the URL an Optimizely host's, and a
    logx router the one respx would ask first: then that router, directly."""

    def _transport_for_url(client: Any, url: httpx.URL) -> Any:
        transport = original(client, url)
        if transport.__class__ is plain and url.host in OPTIMIZELY_HOSTS:
            router = _answering()
            if router is not None:
                return router.direct
        return transport

    setattr(_transport_for_url, _SHORTCUT_MARK, True)
    return _transport_for_url
