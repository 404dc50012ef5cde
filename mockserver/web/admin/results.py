"""Admin operation on results: the table an experiment would show, and why events do not
count."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...endpoint import Endpoint
from ...journal.base import DEFAULT_LIMIT, EVENT_FILTERS, MAX_LIMIT
from ...journal.results import MAX_TABLE_CELLS, REASONS, journal_results
from ..openapi import (
    BAD_QUERY,
    JSON_VALUE,
    NULLABLE_STR,
    PAGING,
    STR,
    array,
    event_filters,
    json_content,
    obj,
    query,
)
from .answers import Budget, dumps, json_answer
from .http import (
    BadQuery,
    Operations,
    after_param,
    check_params,
    chosen_filters,
    int_param,
    problem_response,
)

__all__ = ["OPERATIONS", "SCHEMAS"]

OPERATIONS = Operations()


@OPERATIONS.add(
    "GET",
    "/results",
    {
        "summary": "The results an experiment would show, and why events do not count",
        "parameters": [
            PAGING[0],
            query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                f"list at most this many uncounted events (default {DEFAULT_LIMIT})",
            ),
            *event_filters(),
            *(
                query(
                    name,
                    {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                    f"only events with a timestamp {rule} this (epoch milliseconds)",
                )
                for name, rule in (("start", "at or after"), ("end", "before"))
            ),
        ],
        "responses": {
            "200": {"description": "The table.", "content": json_content("Results")},
            "400": BAD_QUERY,
        },
    },
)
async def get_results(endpoint: Endpoint, request: Request) -> Response:
    try:
        check_params(request, {"after", "limit", "start", "end", *EVENT_FILTERS})
        after = after_param(request)
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        start, end = (
            int_param(request, name, -1, 0, 2**63 - 1) if name in request.query_params else None
            for name in ("start", "end")
        )
        filters = chosen_filters(request)
    except BadQuery as exc:
        return problem_response(400, str(exc))
    # Two reads of the whole journal: never on the event loop.
    result, until = await run_in_threadpool(
        journal_results,
        endpoint.journal,
        datafiles=endpoint.config.datafiles,
        after=after,
        filters=filters,
        limit=limit,
        start=start,
        end=end,
    )
    return await json_answer(_encode, result.to_dict(), until)


def _encode(result: dict[str, Any], until: int) -> bytes:
    """The answer, its uncounted list cut at the size bound (`left_off` counts the rest)."""
    budget, groups = Budget(), []
    table = dumps(result.pop("experiments"))
    budget.take(len(table))
    for group in result.pop("uncounted"):
        part = dumps(group)
        if budget.exhausted or not budget.take(len(part) + 1):
            result["left_off"] += len(group["events"])
            result["truncated"] = True
        else:
            groups.append(part)
    rest = dumps({**result, "last_id": until})
    return b'{"experiments":%s,"uncounted":[%s],%s' % (table, b",".join(groups), rest[1:])


SCHEMAS: dict[str, Any] = {
    "Results": obj(
        {
            "experiments": array("ResultsExperiment"),
            "uncounted": {
                "type": "array",
                "items": obj(
                    {"visitor_id": JSON_VALUE, "events": array("Uncounted")},
                    ["visitor_id", "events"],
                ),
                "description": "the events that do not count, by visitor (at most `limit`)",
            },
            "reasons": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "how many events each reason kept from counting (all of them)",
            },
            "counted": obj(
                {"impressions": {"type": "integer"}, "conversions": {"type": "integer"}}
            ),
            "left_off": {"type": "integer", "description": "uncounted events not listed"},
            "experiments_left_off": {
                "type": "integer",
                "description": "experiments not listed (the table stops at "
                f"{MAX_TABLE_CELLS:,} cells)",
            },
            "truncated": {
                "type": "boolean",
                "description": "true: the table or the uncounted list stopped at a size bound",
            },
            "last_id": {"type": "integer", "description": "the newest request counted"},
        },
        ["experiments", "uncounted", "reasons", "counted", "left_off", "last_id"],
    ),
    "ResultsExperiment": obj(
        {
            "experiment_id": STR,
            "experiment_key": NULLABLE_STR,
            "rule_type": NULLABLE_STR,
            "flag_key": NULLABLE_STR,
            "partial": {
                "type": "boolean",
                "description": "true: the table's size bound cut this experiment's variations "
                "or event keys",
            },
            "variations": {
                "type": "array",
                "items": obj(
                    {
                        "variation_id": STR,
                        "variation_key": NULLABLE_STR,
                        "visitors": {"type": "integer"},
                        "events": {
                            "type": "array",
                            "items": obj(
                                {
                                    "key": STR,
                                    "unique_conversions": {"type": "integer"},
                                    "conversions": {"type": "integer"},
                                    "revenue": {"type": "integer"},
                                },
                                ["key", "unique_conversions", "conversions", "revenue"],
                            ),
                        },
                    },
                    ["variation_id", "variation_key", "visitors", "events"],
                ),
            },
        },
        ["experiment_id", "experiment_key", "rule_type", "flag_key", "variations"],
    ),
    "Uncounted": obj(
        {
            "reason": {"enum": list(REASONS)},
            "message": STR,
            "request_id": {"type": "integer"},
            "path": STR,
            "kind": STR,
            "key": JSON_VALUE,
            "uuid": JSON_VALUE,
            "timestamp": JSON_VALUE,
            "experiment_ids": {"type": "array", "items": STR},
        },
        ["reason", "message", "request_id", "path"],
    ),
}
