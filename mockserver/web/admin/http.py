"""What the admin handlers share: registering an operation, JSON and problem answers, query
parameters and request bodies read within bounds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response

from ...contract.decoding import loads
from ...endpoint import Endpoint
from ...errors import ConfigError
from ...journal.base import MAX_ID
from ...journal.filters import EVENT_FILTERS, check_filters
from ...problem import problem
from ..openapi import wrapped
from .answers import dumps, encode_items, json_answer

_T = TypeVar("_T")

__all__ = [
    "BadQuery",
    "Handler",
    "JSONResponse",
    "Operation",
    "Operations",
    "after_param",
    "bool_param",
    "bounded_body",
    "check_params",
    "chosen_filters",
    "int_param",
    "json_body",
    "off_loop",
    "problem_response",
    "seconds_param",
]

Handler = Callable[[Endpoint, Request], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    """One method on one path under `/_mock`: its handler and its OpenAPI operation object
    (None leaves it out of the document)."""

    method: str
    path: str
    handler: Handler
    spec: dict[str, Any] | None = None


class Operations(list[Operation]):
    """A module's operations, registered by decorating their handlers."""

    def add(
        self, method: str, path: str, spec: dict[str, Any] | None = None
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.append(Operation(method, path, handler, spec))
            return handler

        return register

    def listing(
        self, path: str, name: str, ref: str, summary: str, read: Callable[[Endpoint], list[Any]]
    ) -> None:
        """`GET path`, answering `{name: read(endpoint), "truncated": bool}` (a list of
        `ref` schemas, cut at the answer size bound)."""

        async def get(endpoint: Endpoint, request: Request) -> Response:
            return await json_answer(encode_items, name, await off_loop(read, endpoint), {})

        spec = {"summary": summary, "responses": {"200": wrapped(name, ref, f"The {name}.")}}
        self.append(Operation("GET", path, get, spec))

    def clearing(self, path: str, summary: str, clear: Callable[[Endpoint], None]) -> None:
        """`DELETE path`: `clear(endpoint)` (off the event loop: a million rows take a
        while), then 204."""

        async def delete(endpoint: Endpoint, request: Request) -> Response:
            await off_loop(clear, endpoint)
            return Response(status_code=204)

        spec = {"summary": summary, "responses": {"204": {"description": "Cleared."}}}
        self.append(Operation("DELETE", path, delete, spec))


class JSONResponse(_StarletteJSON):
    """JSON with non-ASCII escaped: a payload may hold lone surrogates (valid JSON
    escapes, `"\\ud800"`) that cannot be encoded as UTF-8 but can be sent back escaped."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


class BadQuery(ValueError):
    """A query parameter that cannot be used; the message says which and why."""


async def off_loop(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`call(*args, **kwargs)` in a worker thread: a journal or plan call may wait on a
    database (a round trip, a commit, a server that went away), never on the event loop
    that answers everyone's requests."""
    return await run_in_threadpool(call, *args, **kwargs)


def problem_response(status: int, detail: str, *, retry_after: int | None = None) -> Response:
    """An admin problem document (with `Retry-After` seconds, when given)."""
    headers, body = problem("admin", status, detail)
    if retry_after is not None:
        headers = [*headers, ("retry-after", str(retry_after))]
    return Response(body, status_code=status, headers=dict(headers))


async def json_body(request: Request) -> Any:
    """The body as JSON (a fault rule, or a list of them)."""
    try:
        return loads(await request.body())
    except RecursionError:
        raise ValueError("the body nests too deeply; send a JSON fault rule") from None
    except ValueError as exc:
        raise ValueError(f"the body is not JSON ({exc}); send a JSON fault rule") from exc


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter `name` as an integer from `low` to `high`, or `default`."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadQuery(f"{name}={value} is out of range; use {low} to {high:,}")
    return value


def seconds_param(request: Request, name: str, high: float) -> float:
    """Query parameter `name` as seconds from 0 to `high` (0 when absent)."""
    raw = request.query_params.get(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise BadQuery(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= high:
        raise BadQuery(f"{name}={value} is out of range; use 0 to {high:g} seconds")
    return value


def check_params(request: Request, allowed: set[str]) -> None:
    """Refuse a query parameter outside `allowed`, naming the ones there are."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadQuery(
            f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join(sorted(allowed))}"
        )


def after_param(request: Request) -> int:
    """`after`: only entries of requests with a greater id (0, the default: from the start)."""
    return int_param(request, "after", 0, 0, MAX_ID)


def bool_param(request: Request, name: str) -> bool:
    """Query parameter `name` as true or false (also 1 or 0); false when absent."""
    raw = request.query_params.get(name, "false")
    if raw.lower() not in ("true", "1", "false", "0"):
        raise BadQuery(f"{name}={raw!r} is not true or false")
    return raw.lower() in ("true", "1")


def chosen_filters(request: Request) -> dict[str, str]:
    """The event filters the query names (`check_params` refuses any other name first), each
    checked (`journal.filters.check_filters`): an enum filter's value it cannot take is
    refused with the values it can."""
    filters = {k: v for k, v in request.query_params.items() if k in EVENT_FILTERS}
    try:
        check_filters(filters)
    except ConfigError as exc:
        raise BadQuery(str(exc)) from None
    return filters
