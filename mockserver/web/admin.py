"""The admin API under `/_mock`: read and reset the journal, health, OpenAPI.

JSON in and out; errors are problem documents that say what to send instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..contract.datafile import Datafile, DatafileError, Datafiles
from ..contract.decoding import loads
from ..endpoint import Endpoint
from ..faults import FaultError, FaultPlanFull, FaultRule, parse_spec
from ..journal.base import EVENT_FILTERS, MAX_LIMIT, JournalError
from ..journal.results import DEFAULT_LIMIT, journal_results
from ..problem import problem
from ..violations import shown
from .guard import ADMIN_PREFIX
from .inspector import inspector_routes
from .openapi import openapi_document

__all__ = ["ADMIN_PREFIX", "admin_exception_handlers", "admin_routes"]

MAX_WAIT_SECONDS = 60.0
MAX_DATAFILE_BYTES = 32 * 1024 * 1024
"""The largest datafile `POST /_mock/datafiles` reads (real ones are rarely over 1 MB)."""


class JSONResponse(_StarletteJSON):
    """JSON with non-ASCII escaped: a payload may hold lone surrogates (valid JSON
    escapes, `"\\ud800"`) that cannot be encoded as UTF-8 but can be sent back escaped."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=False).encode("ascii")


class _BadQuery(ValueError):
    pass


def _problem(status: int, detail: str) -> Response:
    headers, body = problem("admin", status, detail)
    return Response(body, status_code=status, headers=dict(headers))


async def _json_body(request: Request) -> Any:
    try:
        return loads(await request.body())
    except RecursionError:
        raise ValueError("the body nests too deeply; send a JSON fault rule") from None
    except ValueError as exc:
        raise ValueError(f"the body is not JSON ({exc}); send a JSON fault rule") from exc


def _rule(item: Any) -> FaultRule:
    """A rule from its JSON object, or from the CLI's short spec as a JSON string."""
    if isinstance(item, str):
        return parse_spec(item)
    if not isinstance(item, dict):
        raise ValueError(f"a fault rule is a JSON object or a spec string, got {item!r}")
    return FaultRule.from_dict(item)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise _BadQuery(f"{name}={value} is out of range; use {low} to {high:,}")
    return value


def _float(request: Request, name: str, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise _BadQuery(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= high:
        raise _BadQuery(f"{name}={value} is out of range; use 0 to {high:g} seconds")
    return value


def _check_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise _BadQuery(
            f"unknown query parameter(s) {', '.join(unknown)}; use {', '.join(sorted(allowed))}"
        )


async def _wait_newer(endpoint: Endpoint, after: int, deadline: float) -> bool:
    """Wait until the journal commits a request newer than `after`, or the deadline."""
    journal = endpoint.journal
    if journal.last_id > after:
        return True
    loop = asyncio.get_running_loop()
    newer = asyncio.Event()

    def listener(last_id: int) -> None:
        if last_id > after:
            loop.call_soon_threadsafe(newer.set)

    journal.add_listener(listener)
    try:
        if journal.last_id > after:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(newer.wait(), remaining)
        except asyncio.TimeoutError:
            return False
        return True
    finally:
        journal.remove_listener(listener)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _journal_unreadable(request: Request, exc: Exception) -> Response:
    return _problem(503, f"{exc}. Nothing was changed.")


def admin_exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """What the admin app answers for errors its handlers do not turn into a problem."""
    return {JournalError: _journal_unreadable}


def _methods(path: str, **handlers: Callable[[Request], Awaitable[Response]]) -> Route:
    """One route for several methods, so a 405 lists them all in `Allow`."""

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method if request.method != "HEAD" else "GET"](request)

    return Route(path, dispatch, methods=list(handlers))


def admin_routes(endpoint: Endpoint) -> list[BaseRoute]:
    """The `/_mock` routes bound to one endpoint (and so to its journal)."""
    journal = endpoint.journal

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "last_id": journal.last_id,
                "journal": type(journal).__name__,
                "max_requests": journal.max_requests,
            }
        )

    async def list_requests(request: Request) -> Response:
        try:
            _check_params(request, {"after", "limit", "verdict", "events"})
            after = _int(request, "after", 0, 0, 2**62)
            limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        except _BadQuery as exc:
            return _problem(400, str(exc))
        found = journal.requests(
            after=after, limit=limit, verdict=request.query_params.get("verdict")
        )
        with_events = request.query_params.get("events", "false").lower() in ("1", "true")
        listed = [r.to_dict(with_events=with_events) for r in found]
        return JSONResponse(
            {"requests": listed, "last_id": journal.last_id, "generation": journal.generation}
        )

    async def get_request(request: Request) -> Response:
        raw = request.path_params["request_id"]
        is_id = raw.isascii() and raw.isdigit() and len(raw) <= 18  # ids stay below 2**62
        record = journal.request(int(raw)) if is_id else None
        if record is None:
            return _problem(
                404, f"no request with id {shown(raw)}; list them at {ADMIN_PREFIX}/requests"
            )
        return JSONResponse(record.to_dict())

    async def reset(request: Request) -> Response:
        journal.clear()
        return Response(status_code=204)

    async def list_events(request: Request) -> Response:
        try:
            _check_params(request, {"after", "limit", "wait", *EVENT_FILTERS})
            after = _int(request, "after", 0, 0, 2**62)
            limit = _int(request, "limit", 100, 1, MAX_LIMIT)
            wait = _float(request, "wait", MAX_WAIT_SECONDS)
        except _BadQuery as exc:
            return _problem(400, str(exc))
        filters = {k: v for k, v in request.query_params.items() if k in EVENT_FILTERS}
        deadline = time.monotonic() + wait
        while True:
            checked = journal.last_id  # read first: a commit after it wakes the wait
            found = journal.events(after=after, limit=limit, **filters)
            if found or wait <= 0:
                break
            if not await _wait_newer(endpoint, max(after, checked), deadline):
                break
        # `checked` was read before the query: a client resuming from it misses nothing.
        return JSONResponse({"events": [e.to_dict() for e in found], "last_id": checked})

    async def get_results(request: Request) -> Response:
        try:
            _check_params(request, {"after", "limit", *EVENT_FILTERS})
            after = _int(request, "after", 0, 0, 2**62)
            limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        except _BadQuery as exc:
            return _problem(400, str(exc))
        filters = {k: v for k, v in request.query_params.items() if k in EVENT_FILTERS}
        # Two reads of the whole journal: never on the event loop.
        result, until = await run_in_threadpool(
            journal_results,
            journal,
            datafiles=endpoint.config.datafiles,
            after=after,
            filters=filters,
            limit=limit,
        )
        return JSONResponse({**result.to_dict(), "last_id": until})

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"rules": endpoint.faults.describe()})

    async def add_fault(request: Request) -> Response:
        try:
            rule = _rule(await _json_body(request))
        except (ValueError, FaultError) as exc:
            return _problem(400, str(exc))
        try:
            rule_id = endpoint.faults.add(rule)
        except FaultPlanFull as exc:
            return _problem(409, str(exc))
        (described,) = [r for r in endpoint.faults.describe() if r["id"] == rule_id]
        return JSONResponse(described, status_code=201)

    async def replace_faults(request: Request) -> Response:
        try:
            body = await _json_body(request)
            items = body.get("rules") if isinstance(body, dict) else body
            if not isinstance(items, list):
                raise ValueError('send {"rules": [rule, ...]} or a JSON list of rules')
            rules = [_rule(item) for item in items]
            endpoint.faults.replace(rules)
        except (ValueError, FaultError) as exc:
            return _problem(400, str(exc))
        return JSONResponse({"rules": endpoint.faults.describe()})

    async def clear_faults(request: Request) -> Response:
        endpoint.faults.clear()
        return Response(status_code=204)

    async def get_datafiles(request: Request) -> Response:
        return JSONResponse({"datafiles": [f.summary() for f in endpoint.config.datafiles.files]})

    async def add_datafile(request: Request) -> Response:
        body = await _bounded_body(request, MAX_DATAFILE_BYTES)
        if body is None:
            return _problem(413, f"a datafile over {MAX_DATAFILE_BYTES:,} bytes is not read")
        try:
            datafile = Datafile.from_json(body, source=f"POST {ADMIN_PREFIX}/datafiles")
        except DatafileError as exc:
            return _problem(400, str(exc))
        endpoint.use_datafiles(endpoint.config.datafiles.added(datafile))
        return JSONResponse(datafile.summary(), status_code=201)

    async def clear_datafiles(request: Request) -> Response:
        endpoint.use_datafiles(Datafiles())
        return Response(status_code=204)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    return [
        Route(f"{ADMIN_PREFIX}/health", health, methods=["GET"]),
        _methods(f"{ADMIN_PREFIX}/requests", GET=list_requests, DELETE=reset),
        Route(f"{ADMIN_PREFIX}/requests/{{request_id}}", get_request, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/events", list_events, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/results", get_results, methods=["GET"]),
        _methods(
            f"{ADMIN_PREFIX}/faults",
            GET=get_faults,
            POST=add_fault,
            PUT=replace_faults,
            DELETE=clear_faults,
        ),
        _methods(
            f"{ADMIN_PREFIX}/datafiles",
            GET=get_datafiles,
            POST=add_datafile,
            DELETE=clear_datafiles,
        ),
        Route(f"{ADMIN_PREFIX}/openapi.json", openapi, methods=["GET"]),
        *inspector_routes(ADMIN_PREFIX, journal),
    ]
