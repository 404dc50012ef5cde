"""The respx door: routes for the Optimizely hosts, answered by the core.

Only `logx.optimizely.com` and `eu.logx.optimizely.com` (events) and
`cdn.optimizely.com` and `config.optimizely.com` (datafiles) are routed. Any other
request is left to the user's own respx routers when there are any, and
otherwise passes through to the network untouched.
"""

from __future__ import annotations

import contextvars
from typing import Any

import httpx
import respx

from mockserver import DATAFILE_HOSTS, Endpoint

from .transport import render, render_async, to_core

__all__ = ["LOGX_HOSTS", "OPTIMIZELY_HOSTS", "logx_router"]

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


def logx_router(endpoint: Endpoint) -> respx.MockRouter:
    """A respx router (not yet started) for the Optimizely hosts, bound to `endpoint`."""
    router = _LogxRouter(assert_all_called=False, assert_all_mocked=True)

    async def answer_async(request: httpx.Request) -> httpx.Response:
        outcome = await endpoint.handle_async(to_core(request, await request.aread()))
        return await render_async(endpoint.faults, outcome, request)

    def answer(request: httpx.Request) -> Any:
        if _in_async_client.get():
            return answer_async(request)
        outcome = endpoint.handle(to_core(request, request.read()))
        return render(endpoint.faults, outcome, request)

    def elsewhere(request: httpx.Request) -> httpx.Request | None:
        # None lets the user's own routers answer; the request itself passes through.
        return None if _other_routers(router) else request

    router.route(host__in=OPTIMIZELY_HOSTS, name="logx").mock(side_effect=answer)
    router.route(name="not-logx").mock(side_effect=elsewhere)
    return router
