"""Admin operations on the journal: health, the requests, one request, reset, the events
(with a long-poll)."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ...endpoint import Endpoint
from ...journal.base import DEFAULT_LIMIT, EVENT_FILTERS, MAX_ID, MAX_LIMIT
from ...model import EVENT_KINDS, VERDICTS, truthy
from ...violations import shown
from ..guard import ADMIN_PREFIX
from ..openapi import (
    BAD_QUERY,
    JSON_VALUE,
    NULLABLE_STR,
    PAGING,
    PROBLEM,
    STR,
    array,
    event_filters,
    json_content,
    list_of,
    obj,
    query,
)
from ..wakeups import Busy, Wakeups
from .answers import (
    encode_events,
    encode_request,
    encode_requests,
    in_reader,
    json_answer,
)
from .http import (
    BadQuery,
    JSONResponse,
    Operations,
    after_param,
    bool_param,
    check_params,
    chosen_filters,
    int_param,
    problem_response,
    seconds_param,
)

__all__ = ["MAX_WAIT_SECONDS", "OPERATIONS", "SCHEMAS"]

MAX_WAIT_SECONDS = 60
"""The longest `wait` an events query may ask for."""
OPERATIONS = Operations()


@OPERATIONS.add(
    "GET",
    "/health",
    {
        "summary": "Health",
        "responses": {
            "200": {
                "description": "Up.",
                "content": {
                    "application/json": {
                        "schema": obj(
                            {
                                "status": STR,
                                "last_id": {"type": "integer"},
                                "journal": STR,
                                "max_requests": {"type": ["integer", "null"]},
                            }
                        )
                    }
                },
            }
        },
    },
)
async def health(endpoint: Endpoint, request: Request) -> Response:
    journal = endpoint.journal
    return JSONResponse(
        {
            "status": "ok",
            "last_id": journal.last_id,
            "journal": type(journal).__name__,
            "max_requests": journal.max_requests,
        }
    )


@OPERATIONS.add(
    "GET",
    "/requests",
    {
        "summary": "Journaled requests, oldest first",
        "parameters": [
            *PAGING,
            query("verdict", {"enum": list(VERDICTS)}, "only this verdict"),
            query("events", STR, "true: include each request's events"),
        ],
        "responses": {"200": list_of("requests", "RequestRecord"), "400": BAD_QUERY},
    },
)
async def list_requests(endpoint: Endpoint, request: Request) -> Response:
    journal = endpoint.journal
    try:
        check_params(request, {"after", "limit", "verdict", "events"})
        after = after_param(request)
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        verdict = chosen_filters(request).get("verdict")
    except BadQuery as exc:
        return problem_response(400, str(exc))
    found = await in_reader(journal.requests, after=after, limit=limit, verdict=verdict)
    with_events = truthy(request.query_params.get("events"))
    rest = {"last_id": journal.last_id, "generation": journal.generation}
    return await json_answer(encode_requests, found, rest, with_events=with_events)


OPERATIONS.clearing("/requests", "Forget every request (reset)", lambda e: e.journal.clear())


@OPERATIONS.add(
    "GET",
    "/requests/{request_id}",
    {
        "summary": "One request with its events (as many as fit in an answer)",
        "parameters": [
            {"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"}}
        ],
        "responses": {
            "200": {"description": "The request.", "content": json_content("RequestRecord")},
            "404": {"description": "No such id.", "content": PROBLEM},
        },
    },
)
async def get_request(endpoint: Endpoint, request: Request) -> Response:
    raw = request.path_params["request_id"]
    is_id = raw.isascii() and raw.isdigit() and len(raw) <= 18  # ids stay below MAX_ID, 2**62
    record = await in_reader(endpoint.journal.request, int(raw)) if is_id else None
    if record is None:
        return problem_response(
            404, f"no request with id {shown(raw)}; list them at {ADMIN_PREFIX}/requests"
        )
    return await json_answer(encode_request, record)


@OPERATIONS.add(
    "GET",
    "/events",
    {
        "summary": "Flattened events, in arrival order",
        "parameters": [
            *PAGING,
            query(
                "after_index",
                {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                "with `after`: first the events of request `after` past this index "
                "(the `next` of an answer the size bound cut)",
            ),
            *event_filters(),
            query(
                "wait",
                {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                "with `after`: wait up to this many seconds for something newer",
            ),
            query(
                "tail",
                {"type": "boolean"},
                "true: the newest `limit` matching events (still in arrival order), e.g. to "
                "show the last few before following",
            ),
        ],
        "responses": {
            "200": list_of(
                "events",
                "EventRecord",
                {
                    "next": {
                        "type": ["object", "null"],
                        "properties": {
                            "after": {"type": "integer"},
                            "after_index": {"type": "integer"},
                        },
                        "description": "the `after` and `after_index` of the next page "
                        "(null when the answer holds no event)",
                    }
                },
            ),
            "400": BAD_QUERY,
            "503": {"description": "Too many long-polls wait already.", "content": PROBLEM},
        },
    },
)
async def list_events(endpoint: Endpoint, request: Request) -> Response:
    journal = endpoint.journal
    try:
        check_params(request, {"after", "after_index", "limit", "wait", "tail", *EVENT_FILTERS})
        after = after_param(request)
        index = int_param(request, "after_index", -1, 0, MAX_ID)
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        wait = seconds_param(request, "wait", MAX_WAIT_SECONDS)
        tail = bool_param(request, "tail")
        filters = chosen_filters(request)
    except BadQuery as exc:
        return problem_response(400, str(exc))
    after_index = None if index < 0 else index
    deadline = time.monotonic() + wait
    while True:
        checked = journal.last_id  # read first: a commit after it wakes the wait
        found = await in_reader(
            journal.events, after=after, limit=limit, tail=tail, after_index=after_index, **filters
        )
        if found or wait <= 0:
            break
        # Nothing up to `checked`: from now on, only what is newer needs reading.
        after, after_index = max(after, checked), None
        try:
            gone = partial(_client_gone, request)
            if not await Wakeups.of(journal).wait(after, filters, deadline, gone):
                break
        except Busy as exc:
            return problem_response(503, str(exc), retry_after=1)
    # `checked` was read before the query: a client resuming from it misses nothing.
    return await json_answer(encode_events, found, {"last_id": checked})


async def _client_gone(request: Request) -> None:
    """Returns once the client has closed its connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


SCHEMAS: dict[str, Any] = {
    "EventRecord": obj(
        {
            "request_id": {"type": "integer"},
            "index": {"type": "integer"},
            "path": STR,
            "verdict": STR,
            "kind": {"enum": list(EVENT_KINDS)},
            "visitor_id": JSON_VALUE,
            "key": JSON_VALUE,
            "entity_id": JSON_VALUE,
            "uuid": JSON_VALUE,
            "timestamp": JSON_VALUE,
            "duplicate": {"type": "boolean"},
            "decisions": {"type": "array"},
            "attributes": {"type": "object"},
            "entity_key": {
                **NULLABLE_STR,
                "description": "the datafile's key for entity_id (a conversion's event key)",
            },
            "decision_keys": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": STR},
                "description": "per decision, the datafile's experiment_key, variation_key "
                "and flag_key",
            },
        },
        ["request_id", "index", "verdict", "kind"],
    ),
    "RequestRecord": obj(
        {
            "id": {"type": "integer"},
            "received_at": {"type": "number"},
            "method": STR,
            "path": STR,
            "host": NULLABLE_STR,
            "headers": {"type": "array"},
            "client_ip": NULLABLE_STR,
            "strict": {"type": "boolean"},
            "strict_header": NULLABLE_STR,
            "status": {"type": "integer"},
            "verdict": {"enum": list(VERDICTS)},
            "errors": array("Violation"),
            "warnings": array("Violation"),
            "unknown_fields": array("Violation"),
            "payload": JSON_VALUE,
            "raw": NULLABLE_STR,
            "keys": {
                "type": "object",
                "additionalProperties": STR,
                "description": "the datafile's key for each id it resolved, by JSON path",
            },
            "source_id": {
                "type": ["integer", "null"],
                "description": "for an imported request, its id in the journal it came from",
            },
            "event_count": {"type": "integer"},
            "events": array("EventRecord"),
            "events_left_off": {
                "type": "integer",
                "description": "events not given, past the answer's size bound: read them "
                "from /_mock/events?after={id - 1}",
            },
        },
        ["id", "status", "verdict"],
    ),
}
