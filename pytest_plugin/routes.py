"""The respx door: routes for the two Log Endpoint hosts, answered by the core.

Only `logx.optimizely.com` and `eu.logx.optimizely.com` are routed. Any other
request is left to the user's own respx routers when there are any, and
otherwise passes through to the network untouched.
"""

from __future__ import annotations

from typing import Any

import httpx
import respx
from respx.mocks import Mocker

from mockserver import Endpoint

from .transport import to_core, to_httpx

__all__ = ["LOGX_HOSTS", "logx_router"]

LOGX_HOSTS = ("logx.optimizely.com", "eu.logx.optimizely.com")


def _other_routers(router: respx.MockRouter) -> bool:
    registry: dict[str, Any] = getattr(Mocker, "registry", {})
    return any(r is not router for mocker in registry.values() for r in mocker.routers)


def logx_router(endpoint: Endpoint) -> respx.MockRouter:
    """A respx router (not yet started) for the logx hosts, bound to `endpoint`."""
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)

    def answer(request: httpx.Request) -> httpx.Response:
        return to_httpx(endpoint.handle(to_core(request, request.read())), request)

    def elsewhere(request: httpx.Request) -> httpx.Request | None:
        # None lets the user's own routers answer; the request itself passes through.
        return None if _other_routers(router) else request

    router.route(host__in=LOGX_HOSTS, name="logx").mock(side_effect=answer)
    router.route(name="not-logx").mock(side_effect=elsewhere)
    return router
