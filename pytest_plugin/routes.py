"""The respx door: routes for the Optimizely hosts, answered by the core.

Only `logx.optimizely.com` and `eu.logx.optimizely.com` (events) and
`cdn.optimizely.com` and `config.optimizely.com` (datafiles) are routed. Any other
request is left to the user's own respx routers when there are any, and
otherwise passes through to the network untouched.
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
    sync path the same side effect must answer synchronously.
    """

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
    router = _LogxRouter(assert_all_called=False, assert_all_mocked=True)

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

    router.add(_LogxRoute(router, answer), name="logx")
    router.route(name="not-logx").mock(side_effect=elsewhere)
    return router
