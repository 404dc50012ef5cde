"""The web inspector: a page at `/_mock/` that shows requests as they arrive.

The page is static (HTML, CSS and one script shipped in the package; no CDN, no
build step). It reads the admin API and listens to `/_mock/stream`, a
server-sent event stream that announces each commit. Everything a payload
contains is rendered as text by the script; the Content-Security-Policy
forbids inline script, so even a bug there could not run a payload.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..endpoint import Endpoint
from ..journal.base import Journal
from ..model import VERDICTS
from .admin.http import Operations, problem_response
from .openapi import PROBLEM, STR
from .wakeups import Busy, Wakeups

__all__ = ["CSP", "OPERATIONS"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS = {
    "inspector.js": "text/javascript; charset=utf-8",
    "results.js": "text/javascript; charset=utf-8",
    "inspector.css": "text/css; charset=utf-8",
}
_KEEPALIVE_SECONDS = 15.0


def _asset(name: str) -> bytes:
    return resources.files("mockserver.web").joinpath("static", name).read_bytes()


_VERDICT_OPTIONS = b"<!-- verdict options -->"


@functools.cache
def _page() -> bytes:
    """The page, its verdict filter offering every verdict (`VERDICTS`: names written once)."""
    options = "\n      ".join(f'<option value="{v}">{v}</option>' for v in VERDICTS)
    return _asset("index.html").replace(_VERDICT_OPTIONS, options.encode())


def _headers() -> dict[str, str]:
    return {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }


OPERATIONS = Operations()


@OPERATIONS.add(
    "GET",
    "/",
    {
        "summary": "The web inspector page",
        "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": STR}}}},
    },
)
async def page(endpoint: Endpoint, request: Request) -> Response:
    return Response(_page(), media_type="text/html; charset=utf-8", headers=_headers())


@OPERATIONS.add("GET", "/static/{name}")
async def asset(endpoint: Endpoint, request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _ASSETS:
        return Response(f"no asset {name!r}", status_code=404, media_type="text/plain")
    return Response(_asset(name), media_type=_ASSETS[name], headers=_headers())


@OPERATIONS.add(
    "GET",
    "/stream",
    {
        "summary": "Server-sent events: one `journal` event per commit or clear",
        "responses": {
            "200": {
                "description": "An endless event stream.",
                "content": {"text/event-stream": {"schema": STR}},
            },
            "503": {"description": "Too many pages watch already.", "content": PROBLEM},
        },
    },
)
async def stream(endpoint: Endpoint, request: Request) -> Response:
    try:
        Wakeups.of(endpoint.journal).check_room()
    except Busy as exc:
        return problem_response(503, str(exc), retry_after=5)
    return StreamingResponse(
        _announce(endpoint.journal), media_type="text/event-stream", headers=_headers()
    )


async def _announce(journal: Journal) -> AsyncIterator[str]:
    """One `journal` event now and after every commit or clear (however many commits one
    loop turn brings); comments keep it alive."""
    hub = Wakeups.of(journal)
    changed = hub.watch()
    try:
        while True:
            state = {"last_id": journal.last_id, "generation": journal.generation}
            yield f"event: journal\ndata: {json.dumps(state)}\n\n"
            try:
                await asyncio.wait_for(changed.wait(), _KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
            changed.clear()
    finally:
        hub.unwatch(changed)
