"""The OpenAPI 3.1 document of the Log Endpoint and the admin API (`/_mock/openapi.json`)."""

from __future__ import annotations

from typing import Any

from ..journal.base import EVENT_FILTERS, MAX_LIMIT
from ..model import EVENT_KINDS, VERDICTS
from .guard import ADMIN_PREFIX

__all__ = ["openapi_document"]

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_JSON: dict[str, Any] = {}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _array(ref: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_KEYED = _obj({"id": _STR, "key": _STR}, ["id", "key"])
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

_SCHEMAS: dict[str, Any] = {
    "Batch": _obj(
        {
            "account_id": _STR,
            "project_id": _STR,
            "anonymize_ip": {"type": "boolean"},
            "client_name": _STR,
            "client_version": _STR,
            "revision": _STR,
            "enrich_decisions": {"type": "boolean"},
            "region": _STR,
            "visitors": _array("Visitor"),
        },
        ["account_id", "visitors"],
    ),
    "Visitor": _obj(
        {
            "visitor_id": _STR,
            "session_id": _STR,
            "attributes": _array("Attribute"),
            "snapshots": _array("Snapshot"),
        },
        ["visitor_id", "snapshots"],
    ),
    "Attribute": _obj(
        {
            "type": _STR,
            "value": {"type": ["string", "number", "boolean"]},
            "entity_id": _STR,
            "key": _STR,
        },
        ["type", "value"],
    ),
    "Snapshot": _obj({"events": _array("Event"), "decisions": _array("Decision")}, ["events"]),
    "Decision": _obj(
        {
            "campaign_id": _NULLABLE_STR,
            "experiment_id": _NULLABLE_STR,
            "variation_id": _NULLABLE_STR,
            "is_campaign_holdback": {"type": "boolean"},
            "metadata": {"type": "object"},
        },
        ["campaign_id", "experiment_id", "variation_id"],
    ),
    "Event": _obj(
        {
            "timestamp": {"type": "integer"},
            "uuid": _STR,
            "entity_id": _NULLABLE_STR,
            "key": _STR,
            "type": _STR,
            "revenue": {"type": "integer"},
            "value": {"type": "number"},
            "quantity": {"type": "integer"},
            "tags": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "properties": {"type": "object", "additionalProperties": _STR},
        },
        ["timestamp", "uuid"],
    ),
    "Violation": _obj(
        {"path": _STR, "rule": _STR, "message": _STR, "expected": _NULLABLE_STR, "actual": _JSON},
        ["path", "rule", "message"],
    ),
    "Problem": _obj(
        {
            "type": _STR,
            "title": _STR,
            "status": {"type": "integer"},
            "detail": _STR,
            "request_id": {"type": "integer"},
            "violations": _array("Violation"),
        },
        ["type", "title", "status", "detail"],
    ),
    "FaultRule": {
        "oneOf": [
            {"type": "string", "description": "the CLI spec, e.g. status=503,times=2"},
            _obj(
                {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "retry_after": {"type": "integer"},
                    "delay": _STR,
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
                    "account_id": _STR,
                    "client_name": _STR,
                    "visitor_id": _STR,
                    "event_key": _STR,
                    "times": {"type": "integer"},
                    "id": {"type": "integer"},
                    "fired": {"type": "integer"},
                }
            ),
        ]
    },
    "DatafileUpload": {
        **_obj(
            {
                "version": {"enum": ["2", "3", "4"]},
                "accountId": _STR,
                "projectId": _STR,
                "revision": _STR,
                "anonymizeIP": {"type": ["boolean", "null"]},
                "botFiltering": {"type": ["boolean", "null"]},
                "events": {"type": "array", "items": _KEYED},
                "attributes": {"type": "array", "items": _KEYED},
                "experiments": _array("DatafileExperiment"),
                "groups": {
                    "type": "array",
                    "items": _obj({"experiments": _array("DatafileExperiment")}),
                },
                "rollouts": {
                    "type": "array",
                    "items": _obj(
                        {"id": _STR, "experiments": _array("DatafileExperiment")}, ["id"]
                    ),
                },
                "holdouts": _array("DatafileHoldout"),
                "localHoldouts": _array("DatafileHoldout"),
                "featureFlags": {
                    "type": "array",
                    "items": _obj(
                        {"key": _STR, "experimentIds": {"type": "array", "items": _STR}}, ["key"]
                    ),
                },
            },
            ["version", "accountId", "projectId", "revision"],
        ),
        "description": "An Optimizely datafile (only the parts logx-mock checks against are "
        "described; the rest is ignored).",
    },
    "DatafileExperiment": _obj(
        {
            "id": _STR,
            "key": _STR,
            "layerId": _STR,
            "variations": {"type": "array", "items": _KEYED},
        },
        ["id", "key", "layerId"],
    ),
    "DatafileHoldout": _obj(
        {
            "id": _STR,
            "key": _STR,
            "layerId": _STR,
            "variations": {"type": "array", "items": _KEYED},
        },
        ["id", "key"],
    ),
    "Datafile": _obj(
        {
            "source": _STR,
            "account_id": _STR,
            "project_id": _STR,
            "revision": _STR,
            "anonymize_ip": {"type": ["boolean", "null"]},
            "bot_filtering": {"type": ["boolean", "null"]},
            "experiments": {"type": "integer"},
            "flags": {"type": "integer"},
            "events": {"type": "integer"},
            "attributes": {"type": "integer"},
        },
        ["source", "account_id", "project_id", "revision"],
    ),
    "Results": _obj(
        {
            "experiments": _array("ResultsExperiment"),
            "uncounted": {
                "type": "array",
                "items": _obj(
                    {"visitor_id": _JSON, "events": _array("Uncounted")}, ["visitor_id", "events"]
                ),
                "description": "the events that do not count, by visitor (at most `limit`)",
            },
            "reasons": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "how many events each reason kept from counting (all of them)",
            },
            "counted": _obj(
                {"impressions": {"type": "integer"}, "conversions": {"type": "integer"}}
            ),
            "left_off": {"type": "integer", "description": "uncounted events not listed"},
            "last_id": {"type": "integer", "description": "the newest request counted"},
        },
        ["experiments", "uncounted", "reasons", "counted", "left_off", "last_id"],
    ),
    "ResultsExperiment": _obj(
        {
            "experiment_id": _STR,
            "experiment_key": _NULLABLE_STR,
            "rule_type": _NULLABLE_STR,
            "flag_key": _NULLABLE_STR,
            "variations": {
                "type": "array",
                "items": _obj(
                    {
                        "variation_id": _STR,
                        "variation_key": _NULLABLE_STR,
                        "visitors": {"type": "integer"},
                        "events": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "key": _STR,
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
    "Uncounted": _obj(
        {
            "reason": {
                "enum": [
                    "before_impression",
                    "no_experiment",
                    "duplicate",
                    "revenue_not_integer",
                    "revenue_only_in_tags",
                    "other_variation",
                    "rejected",
                    "faulted",
                ]
            },
            "message": _STR,
            "request_id": {"type": "integer"},
            "path": _STR,
            "kind": _STR,
            "key": _JSON,
            "uuid": _JSON,
            "timestamp": _JSON,
            "experiment_ids": {"type": "array", "items": _STR},
        },
        ["reason", "message", "request_id", "path"],
    ),
    "EventRecord": _obj(
        {
            "request_id": {"type": "integer"},
            "index": {"type": "integer"},
            "path": _STR,
            "verdict": _STR,
            "kind": {"enum": list(EVENT_KINDS)},
            "visitor_id": _JSON,
            "key": _JSON,
            "entity_id": _JSON,
            "uuid": _JSON,
            "timestamp": _JSON,
            "duplicate": {"type": "boolean"},
            "decisions": {"type": "array"},
            "attributes": {"type": "object"},
            "entity_key": {
                **_NULLABLE_STR,
                "description": "the datafile's key for entity_id (a conversion's event key)",
            },
            "decision_keys": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": _STR},
                "description": "per decision, the datafile's experiment_key, variation_key "
                "and flag_key",
            },
        },
        ["request_id", "index", "verdict", "kind"],
    ),
    "RequestRecord": _obj(
        {
            "id": {"type": "integer"},
            "received_at": {"type": "number"},
            "method": _STR,
            "path": _STR,
            "host": _NULLABLE_STR,
            "headers": {"type": "array"},
            "client_ip": _NULLABLE_STR,
            "strict": {"type": "boolean"},
            "strict_header": _NULLABLE_STR,
            "status": {"type": "integer"},
            "verdict": {"enum": list(VERDICTS)},
            "errors": _array("Violation"),
            "warnings": _array("Violation"),
            "unknown_fields": _array("Violation"),
            "payload": _JSON,
            "raw": _NULLABLE_STR,
            "keys": {
                "type": "object",
                "additionalProperties": _STR,
                "description": "the datafile's key for each id it resolved, by JSON path",
            },
            "event_count": {"type": "integer"},
            "events": _array("EventRecord"),
        },
        ["id", "status", "verdict"],
    ),
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_FILTERS = [_query(name, _STR, f"only events whose {name} equals this") for name in EVENT_FILTERS]
_PAGING = [
    _query(
        "after",
        {"type": "integer", "minimum": 0, "maximum": 2**62},
        "only entries of requests with a greater id",
    ),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "at most this many"),
]


def _wrapped(name: str, ref: str, description: str) -> dict[str, Any]:
    """A JSON answer `{name: [ref, ...]}`."""
    schema = _obj({name: _array(ref)}, [name])
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(name: str, ref: str) -> dict[str, Any]:
    schema = _obj({name: _array(ref), "last_id": {"type": "integer"}}, [name, "last_id"])
    return {"description": f"The {name}.", "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    strict = {
        "name": "X-Optimizely-Strict",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "`true` or `1`: answer 400 to a batch that breaks the contract.",
    }
    events_post = {
        "summary": "Send a batch of visitors, decisions and events (the Log Endpoint)",
        "parameters": [strict],
        "requestBody": {"required": True, "content": _json("Batch")},
        "responses": {
            "204": {"description": "Queued for recording (not a sign the batch was valid)."},
            "400": {"description": "Malformed, or invalid in strict mode.", "content": _PROBLEM},
            "404": {"description": "Not the events path.", "content": _PROBLEM},
            "405": {"description": "Not POST.", "content": _PROBLEM},
            "413": {"description": "Over 3.5 MB (decompressed).", "content": _PROBLEM},
            "503": {"description": "The journal cannot record.", "content": _PROBLEM},
        },
    }
    admin_problem = {"description": "Bad query.", "content": _PROBLEM}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "logx-mock",
            "version": "0.1.0",
            "description": "A local emulator of Optimizely's Event API Log Endpoint.",
        },
        "paths": {
            "/v1/events": {
                "post": events_post,
                "options": {
                    "summary": "CORS preflight",
                    "responses": {"204": {"description": "Preflight allowed."}},
                },
            },
            f"{ADMIN_PREFIX}/health": {
                "get": {
                    "summary": "Health",
                    "responses": {
                        "200": {
                            "description": "Up.",
                            "content": {
                                "application/json": {
                                    "schema": _obj(
                                        {
                                            "status": _STR,
                                            "last_id": {"type": "integer"},
                                            "journal": _STR,
                                            "max_requests": {"type": ["integer", "null"]},
                                        }
                                    )
                                }
                            },
                        }
                    },
                }
            },
            f"{ADMIN_PREFIX}/requests": {
                "get": {
                    "summary": "Journaled requests, oldest first",
                    "parameters": [
                        *_PAGING,
                        _query("verdict", _STR, "only this verdict"),
                        _query("events", _STR, "true: include each request's events"),
                    ],
                    "responses": {
                        "200": _list_of("requests", "RequestRecord"),
                        "400": admin_problem,
                    },
                },
                "delete": {
                    "summary": "Forget every request (reset)",
                    "responses": {"204": {"description": "Cleared."}},
                },
            },
            f"{ADMIN_PREFIX}/requests/{{request_id}}": {
                "get": {
                    "summary": "One request with its events",
                    "parameters": [
                        {
                            "name": "request_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The request.", "content": _json("RequestRecord")},
                        "404": {"description": "No such id.", "content": _PROBLEM},
                    },
                }
            },
            f"{ADMIN_PREFIX}/events": {
                "get": {
                    "summary": "Flattened events, in arrival order",
                    "parameters": [
                        *_PAGING,
                        *_FILTERS,
                        _query(
                            "wait",
                            {"type": "number", "minimum": 0, "maximum": 60},
                            "with `after`: wait up to this many seconds for something newer",
                        ),
                    ],
                    "responses": {"200": _list_of("events", "EventRecord"), "400": admin_problem},
                }
            },
            f"{ADMIN_PREFIX}/results": {
                "get": {
                    "summary": "The results an experiment would show, and why events do not count",
                    "parameters": [
                        _PAGING[0],
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                            "list at most this many uncounted events (default 100)",
                        ),
                        *_FILTERS,
                    ],
                    "responses": {
                        "200": {"description": "The table.", "content": _json("Results")},
                        "400": admin_problem,
                    },
                }
            },
            f"{ADMIN_PREFIX}/faults": {
                "get": {
                    "summary": "The fault plan in force",
                    "responses": {"200": _wrapped("rules", "FaultRule", "The rules.")},
                },
                "put": {
                    "summary": "Replace the fault plan",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _obj({"rules": _array("FaultRule")}, ["rules"]),
                                        _array("FaultRule"),
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _wrapped("rules", "FaultRule", "The new rules."),
                        "400": admin_problem,
                    },
                },
                "post": {
                    "summary": "Append one fault rule",
                    "requestBody": {"required": True, "content": _json("FaultRule")},
                    "responses": {
                        "201": {"description": "Added.", "content": _json("FaultRule")},
                        "400": admin_problem,
                        "409": {
                            "description": "The plan already holds 100 rules.",
                            "content": _PROBLEM,
                        },
                    },
                },
                "delete": {
                    "summary": "Remove every rule and cancel pending delays",
                    "responses": {"204": {"description": "Cleared."}},
                },
            },
            f"{ADMIN_PREFIX}/datafiles": {
                "get": {
                    "summary": "The datafiles batches are checked against",
                    "responses": {"200": _wrapped("datafiles", "Datafile", "The datafiles.")},
                },
                "post": {
                    "summary": "Check batches against one more datafile (one of the same "
                    "project and revision is replaced)",
                    "requestBody": {"required": True, "content": _json("DatafileUpload")},
                    "responses": {
                        "201": {"description": "Loaded.", "content": _json("Datafile")},
                        "400": admin_problem,
                        "413": admin_problem,
                    },
                },
                "delete": {
                    "summary": "Stop checking against datafiles",
                    "responses": {"204": {"description": "Cleared."}},
                },
            },
            f"{ADMIN_PREFIX}/": {
                "get": {
                    "summary": "The web inspector page",
                    "responses": {
                        "200": {"description": "HTML.", "content": {"text/html": {"schema": _STR}}}
                    },
                }
            },
            f"{ADMIN_PREFIX}/stream": {
                "get": {
                    "summary": "Server-sent events: one `journal` event per commit or clear",
                    "responses": {
                        "200": {
                            "description": "An endless event stream.",
                            "content": {"text/event-stream": {"schema": _STR}},
                        }
                    },
                }
            },
            f"{ADMIN_PREFIX}/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": _SCHEMAS},
    }
