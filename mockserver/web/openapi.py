"""The OpenAPI 3.1 document (`/_mock/openapi.json`), assembled from fragments.

Every admin handler carries its own OpenAPI operation beside it (`web/admin/`), and each
module its own component schemas; this module holds the pieces they are built from, the
Log Endpoint's own part (`/v1/events` and the batch it takes), and `build_document`, which
puts them together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..batch import FIELDS, Field
from ..endpoint import EVENTS_PATH
from ..journal.base import MAX_ID, MAX_LIMIT
from ..journal.filters import EVENT_FILTERS, FILTER_CHOICES, FILTER_HELP

__all__ = [
    "BAD_QUERY",
    "JSON_VALUE",
    "NULLABLE_STR",
    "PAGING",
    "PROBLEM",
    "STR",
    "array",
    "batch_schemas",
    "build_document",
    "event_filters",
    "json_content",
    "list_of",
    "obj",
    "query",
    "wrapped",
]

STR = {"type": "string"}
NULLABLE_STR = {"type": ["string", "null"]}
JSON_VALUE: dict[str, Any] = {}
"""Any JSON value (the schema that accepts everything)."""
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
"""The content of every error answer: a problem document."""
BAD_QUERY = {"description": "Bad query.", "content": PROBLEM}


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object schema with these properties (and these required)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def array(ref: str) -> dict[str, Any]:
    """An array of the component schema `ref`."""
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}


def json_content(ref: str) -> dict[str, Any]:
    """JSON content of the component schema `ref`."""
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def event_filters() -> list[dict[str, Any]]:
    """The event filters, one query parameter each: what it matches, and for an enum filter
    the values it takes (anything else is a 400)."""
    return [
        query(
            name,
            {"enum": list(FILTER_CHOICES[name])} if name in FILTER_CHOICES else STR,
            FILTER_HELP[name],
        )
        for name in EVENT_FILTERS
    ]


PAGING = [
    query(
        "after",
        {"type": "integer", "minimum": 0, "maximum": MAX_ID},
        "only entries of requests with a greater id",
    ),
    query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "at most this many"),
]


TRUNCATED = {
    "type": "boolean",
    "description": "true: the answer stopped at its size bound (8 MiB); ask again after its "
    "last item",
}


def wrapped(name: str, ref: str, description: str) -> dict[str, Any]:
    """A JSON answer `{name: [ref, ...]}`."""
    schema = obj({name: array(ref), "truncated": {**TRUNCATED, "const": True}}, [name])
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def list_of(name: str, ref: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON answer `{name: [ref, ...], "last_id": N, "truncated": bool, **extra}`."""
    schema = obj(
        {name: array(ref), "last_id": {"type": "integer"}, "truncated": TRUNCATED, **(extra or {})},
        [name, "last_id"],
    )
    return {"description": f"The {name}.", "content": {"application/json": {"schema": schema}}}


_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "scalar": {"type": ["string", "number", "boolean"]},
    "integer": {"type": "integer", "format": "int64"},
}


def _field_schema(spec: Field) -> dict[str, Any]:
    """One field of the batch as JSON Schema: its kind, nullable when it is id-like (null
    is a warning, not an error), its items' or values' schema."""
    if spec.level is not None:
        ref = f"#/components/schemas/{spec.level.capitalize()}"
        return array(spec.level.capitalize()) if spec.kind == "array" else {"$ref": ref}
    schema = dict(_KIND_SCHEMAS.get(spec.kind, {"type": spec.kind}))
    if spec.id_like:
        schema["type"] = [schema["type"], "null"]
    if spec.values is not None:
        schema["additionalProperties"] = _KIND_SCHEMAS.get(spec.values, {"type": spec.values})
    return schema


def batch_schemas() -> dict[str, Any]:
    """The batch's component schemas (`Batch`, `Visitor`, ... `Event`), generated from the
    validator's own field table (`batch.FIELDS`)."""
    return {
        level.capitalize(): obj(
            {name: _field_schema(spec) for name, spec in fields.items()},
            [name for name, spec in fields.items() if spec.required],
        )
        for level, fields in FIELDS.items()
    }


SCHEMAS: dict[str, Any] = {
    **batch_schemas(),
    "Violation": obj(
        {"path": STR, "rule": STR, "message": STR, "expected": NULLABLE_STR, "actual": JSON_VALUE},
        ["path", "rule", "message"],
    ),
    "Problem": obj(
        {
            "type": STR,
            "title": STR,
            "status": {"type": "integer"},
            "detail": STR,
            "request_id": {"type": "integer"},
            "violations": array("Violation"),
        },
        ["type", "title", "status", "detail"],
    ),
}
"""The Log Endpoint's schemas: the batch it takes and the problem documents it answers."""

_STRICT = {
    "name": "X-Optimizely-Strict",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "`true` or `1`: answer 400 to a batch that breaks the contract.",
}


def _datafile_get(*, authenticated: bool) -> dict[str, Any]:
    """The CDN's datafile route (`mockserver.cdn`), as the SDKs poll it."""
    headers = [
        {"name": name, "in": "header", "required": False, "schema": STR}
        for name in ("If-None-Match", "If-Modified-Since")
    ]
    if authenticated:
        headers.append({"name": "Authorization", "in": "header", "required": True, "schema": STR})
    key = {"name": "sdk_key", "in": "path", "required": True, "schema": STR}
    return {
        "summary": "The loaded datafile with this sdkKey"
        + (" (any bearer token is accepted)" if authenticated else ""),
        "parameters": [key, *headers],
        "responses": {
            "200": {
                "description": "The datafile, exactly as given, with ETag and Last-Modified.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "304": {"description": "Not modified since If-Modified-Since / If-None-Match."},
            "403": {"description": "No datafile has this sdkKey.", "content": PROBLEM},
        },
    }


PATHS: dict[str, Any] = {
    "/datafiles/{sdk_key}.json": {"get": _datafile_get(authenticated=False)},
    "/datafiles/auth/{sdk_key}.json": {"get": _datafile_get(authenticated=True)},
    EVENTS_PATH: {
        "post": {
            "summary": "Send a batch of visitors, decisions and events (the Log Endpoint)",
            "parameters": [_STRICT],
            "requestBody": {"required": True, "content": json_content("Batch")},
            "responses": {
                "204": {"description": "Queued for recording (not a sign the batch was valid)."},
                "400": {"description": "Malformed, or invalid in strict mode.", "content": PROBLEM},
                "404": {
                    "description": "Not the events path (journaled as not_found).",
                    "content": PROBLEM,
                },
                "405": {"description": "Not POST (journaled as not_found).", "content": PROBLEM},
                "413": {"description": "Over 3.5 MB (decompressed).", "content": PROBLEM},
                "503": {"description": "The journal cannot record.", "content": PROBLEM},
            },
        },
        "options": {
            "summary": "CORS preflight",
            "responses": {"204": {"description": "Preflight allowed."}},
        },
    },
}
"""The core's own paths: the Log Endpoint, and the datafiles it serves to the SDKs."""


def build_document(
    operations: Iterable[tuple[str, str, dict[str, Any]]], schemas: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """The document: the Log Endpoint's part, then each (path, method, operation) given, with
    every component schema given (a name defined twice is a bug)."""
    paths: dict[str, Any] = {path: dict(methods) for path, methods in PATHS.items()}
    for path, method, spec in operations:
        paths.setdefault(path, {})[method.lower()] = spec
    components: dict[str, Any] = dict(SCHEMAS)
    for more in schemas:
        twice = set(components) & set(more)
        assert not twice, f"component schemas defined twice: {sorted(twice)}"
        components.update(more)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "logx-mock",
            "version": "0.1.0",
            "description": "A local emulator of Optimizely's Event API Log Endpoint.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
