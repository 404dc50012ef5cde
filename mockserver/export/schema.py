"""The JSON Schema of one NDJSON export line: what `import` accepts, written once.

The same schema validates each line `import` reads (with `jsonschema`) and documents
`POST /_mock/import` in the OpenAPI document, so what the document promises and what
import accepts cannot drift apart. It holds a line to what a later export, a HAR entry
and a replay can use: a verdict, a status, a fault and a time that mean something.
"""

from __future__ import annotations

from typing import Any

from ..faults import FAULT_KINDS
from ..model import VERDICTS

__all__ = ["EXPORT_LINE_SCHEMA"]

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_VIOLATIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"path": _STR, "rule": _STR, "message": _STR, "expected": _STR_OR_NULL},
        "required": ["path", "rule", "message"],
    },
}
_FAULT = {
    "type": ["object", "null"],
    "properties": {
        "rule": {"type": "integer"},
        "kind": {"enum": ["delay", *FAULT_KINDS]},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "retry_after": {"type": "integer", "minimum": 0},
        "seed": {"type": "integer"},
        "delay_ms": {"type": "number", "minimum": 0, "maximum": 86_400_000},
    },
    "required": ["rule", "kind"],
}
_BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_NO_CONTROL = "^[^\\r\\n\\x00]*$"
# A request path as the server journaled it (percent-decoded, so a space or a control
# character can be in it); no \s: its meaning differs between regex dialects.
_PATH = "^/[^\\r\\n\\x00]*$"

EXPORT_LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One journaled request, as `logx-mock export` writes it (one per line).",
    "properties": {
        "id": {"type": "integer", "minimum": 0, "description": "its id in the journal"},
        "source_id": {
            **_INT_OR_NULL,
            "description": "for an imported request, its id in the journal it came from",
        },
        "received_at": {
            "type": "number",
            "minimum": 0,
            "maximum": 253_402_300_799,
            "description": "when it arrived, seconds since 1970 (UTC)",
        },
        "method": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
        "path": {"type": "string", "pattern": _PATH},
        "host": _STR_OR_NULL,
        "headers": {
            "type": "array",
            "items": {
                "type": "array",
                "items": {"type": "string", "pattern": _NO_CONTROL},
                "minItems": 2,
                "maxItems": 2,
            },
            "description": "[name, value] pairs, in the order they came",
        },
        "client_ip": _STR_OR_NULL,
        "strict": {"type": "boolean"},
        "strict_header": _STR_OR_NULL,
        "status": {"type": "integer", "minimum": 0, "maximum": 599, "description": "0: none"},
        "verdict": {"enum": list(VERDICTS)},
        "errors": _VIOLATIONS,
        "warnings": _VIOLATIONS,
        "unknown_fields": _VIOLATIONS,
        "fault": _FAULT,
        "keys": {"type": "object", "additionalProperties": _STR},
        "body": {"type": ["object", "null"], "description": "the body as sent, when it parsed"},
        "body_base64": {
            "type": ["string", "null"],
            "pattern": _BASE64,
            "description": "the body as sent, when it did not parse",
        },
        "events": {
            "type": "array",
            "items": {"type": "object"},
            "description": "its events as the journal flattened them (import flattens the "
            "body again and keeps only their duplicate flags)",
        },
    },
    "required": [
        "id",
        "received_at",
        "method",
        "path",
        "host",
        "headers",
        "client_ip",
        "strict",
        "strict_header",
        "status",
        "verdict",
        "errors",
        "warnings",
        "unknown_fields",
        "fault",
        "keys",
        "body",
        "body_base64",
        "events",
    ],
    "not": {
        "properties": {"body": {"type": "object"}, "body_base64": {"type": "string"}},
        "required": ["body", "body_base64"],
        "description": "a body that parsed is not also given as base64",
    },
}
