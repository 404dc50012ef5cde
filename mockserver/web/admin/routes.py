"""The `/_mock` routes and the OpenAPI document, both from the same operations.

Each handler module lists its operations (method, path, handler, OpenAPI operation);
this module binds them to one endpoint as Starlette routes, one route per path so a 405
lists every method of it in `Allow`, and builds the document from the same list.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...endpoint import Endpoint
from ...journal.base import JournalError
from .. import inspector
from ..guard import ADMIN_PREFIX
from ..openapi import build_document
from . import datafiles, export, faults, journal, results
from .http import Handler, JSONResponse, Operation, Operations, problem_response

log = logging.getLogger("logx_mock")

__all__ = ["admin_exception_handlers", "admin_routes", "openapi_document"]

_OWN = Operations()


@_OWN.add(
    "GET",
    "/openapi.json",
    {
        "summary": "This document",
        "responses": {
            "200": {
                "description": "OpenAPI 3.1.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    },
)
async def openapi(endpoint: Endpoint, request: Request) -> Response:
    return JSONResponse(openapi_document())


OPERATIONS: tuple[Operation, ...] = (
    *journal.OPERATIONS,
    *results.OPERATIONS,
    *export.OPERATIONS,
    *faults.OPERATIONS,
    *datafiles.OPERATIONS,
    *inspector.OPERATIONS,
    *_OWN,
)
_SCHEMAS = (journal.SCHEMAS, results.SCHEMAS, export.SCHEMAS, faults.SCHEMAS, datafiles.SCHEMAS)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the Log Endpoint and the admin API (a fresh copy)."""
    documented = [
        (ADMIN_PREFIX + op.path, op.method, op.spec) for op in OPERATIONS if op.spec is not None
    ]
    return build_document(documented, _SCHEMAS)


def admin_routes(endpoint: Endpoint) -> list[BaseRoute]:
    """The `/_mock` routes bound to one endpoint (and so to its journal)."""
    by_path: dict[str, dict[str, Handler]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op.handler
    return [_route(endpoint, path, handlers) for path, handlers in by_path.items()]


def _route(endpoint: Endpoint, path: str, handlers: dict[str, Handler]) -> Route:
    """One route for every method of a path, so a 405 lists them all in `Allow`."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](endpoint, request)

    return Route(ADMIN_PREFIX + path, dispatch, methods=list(handlers))


async def _journal_unreadable(request: Request, exc: Exception) -> Response:
    """The journal's store cannot answer (a damaged file, a database gone away): 503,
    retry in a second (the store may be back), and a line in the log."""
    log.error("%s %s answered 503: %s", request.method, request.url.path, exc)
    answer = problem_response(503, f"{exc}. Nothing was changed.")
    answer.headers["retry-after"] = "1"
    return answer


def admin_exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """What the admin app answers for errors its handlers do not turn into a problem."""
    return {JournalError: _journal_unreadable}
