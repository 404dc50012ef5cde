"""Admin operations on the fault plan: read it, add a rule, replace it, clear it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ...endpoint import Endpoint
from ...faults import MAX_RULES, FaultError, FaultPlanFull, rule_from, rules_from
from ..openapi import BAD_QUERY, PROBLEM, STR, array, json_content, obj, wrapped
from .http import JSONResponse, Operations, json_body, off_loop, problem_response

__all__ = ["OPERATIONS", "SCHEMAS"]

OPERATIONS = Operations()


OPERATIONS.listing(
    "/faults", "rules", "FaultRule", "The fault plan in force", lambda e: e.faults.describe()
)


@OPERATIONS.add(
    "POST",
    "/faults",
    {
        "summary": "Append one fault rule",
        "requestBody": {"required": True, "content": json_content("FaultRule")},
        "responses": {
            "201": {"description": "Added.", "content": json_content("FaultRule")},
            "400": BAD_QUERY,
            "409": {
                "description": f"The plan already holds {MAX_RULES} rules.",
                "content": PROBLEM,
            },
        },
    },
)
async def add_fault(endpoint: Endpoint, request: Request) -> Response:
    try:
        rule = rule_from(await json_body(request))
    except (ValueError, FaultError) as exc:
        return problem_response(400, str(exc))
    try:
        rule_id = await off_loop(endpoint.faults.add, rule)
    except FaultPlanFull as exc:
        return problem_response(409, str(exc))
    (described,) = [r for r in await off_loop(endpoint.faults.describe) if r["id"] == rule_id]
    return JSONResponse(described, status_code=201)


@OPERATIONS.add(
    "PUT",
    "/faults",
    {
        "summary": "Replace the fault plan",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            obj({"rules": array("FaultRule")}, ["rules"]),
                            array("FaultRule"),
                        ]
                    }
                }
            },
        },
        "responses": {"200": wrapped("rules", "FaultRule", "The new rules."), "400": BAD_QUERY},
    },
)
async def replace_faults(endpoint: Endpoint, request: Request) -> Response:
    try:
        rules = rules_from(await json_body(request), source="the body")
        await off_loop(endpoint.faults.replace, rules)
    except (ValueError, FaultError) as exc:
        return problem_response(400, str(exc))
    return JSONResponse({"rules": await off_loop(endpoint.faults.describe)})


OPERATIONS.clearing(
    "/faults", "Remove every rule and cancel pending delays", lambda e: e.faults.clear()
)


SCHEMAS: dict[str, Any] = {
    "FaultRule": {
        "oneOf": [
            {"type": "string", "description": "the CLI spec, e.g. status=503,times=2"},
            obj(
                {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "retry_after": {"type": "integer"},
                    "delay": STR,
                    "reset": {"type": "boolean"},
                    "close": {"type": "boolean"},
                    "hang": {"type": "boolean"},
                    "dribble": {"type": "boolean"},
                    "hang_max": {"type": ["number", "string"]},
                    "dribble_interval": {"type": ["number", "string"]},
                    "sequence": {"type": "array", "items": {"type": ["integer", "string"]}},
                    "nth": {"type": "integer"},
                    "first": {"type": "integer"},
                    "every": {"type": "integer"},
                    "rate": {"type": "number"},
                    "seed": {"type": "integer"},
                    "account_id": STR,
                    "client_name": STR,
                    "visitor_id": STR,
                    "event_key": STR,
                    "times": {"type": "integer"},
                    "id": {"type": "integer"},
                    "fired": {"type": "integer"},
                }
            ),
        ]
    },
}
