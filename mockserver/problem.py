"""RFC 9457 problem details: the body of every 4xx/5xx the endpoint sends.

The real endpoint's 400 body is undocumented; logx-mock answers
`application/problem+json` with a `violations` list so a client (or a person
with curl) learns every reason at once.
"""

from __future__ import annotations

import json
from typing import Any

from .violations import Violation

__all__ = ["PROBLEM_TYPES", "problem"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPES = {
    "invalid": "Batch failed validation",
    "malformed": "Body is not a JSON object",
    "too_large": "Body too large",
    "head_too_large": "Request head too large",
    "not_found": "No such endpoint",
    "method": "Method not allowed",
    "unavailable": "Journal unavailable",
    "stopping": "Server shutting down",
    "fault": "Injected fault",
    "timeout": "Body not received in time",
    "head_timeout": "Request head not received in time",
    "over_capacity": "Too many connections",
    "admin": "Bad admin request",
    "denied": "Admin access denied",
    "refused": "Host not served by this proxy",
    "proxy": "Bad proxy request",
    "denied_datafile": "No such datafile",
}


def problem(
    kind: str,
    status: int,
    detail: str,
    *,
    violations: list[Violation] | None = None,
    **extra: Any,
) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of a problem response of one of `PROBLEM_TYPES`."""
    body: dict[str, Any] = {
        "type": f"urn:logx-mock:problem:{kind}",
        "title": PROBLEM_TYPES[kind],
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    if violations is not None:
        body["violations"] = [v.to_dict() for v in violations]
    return [("content-type", PROBLEM_CONTENT_TYPE)], json.dumps(body).encode()
