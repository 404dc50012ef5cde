"""The HAR 1.2 export: each journaled request as an HTTP Archive entry, with its headers,
its body (`postData`) and the answer it got, openable in a browser's devtools.

The journal does not record the scheme, the HTTP version nor the answer's bytes: the
URL is `http://` + the request's `Host` + its path, the version `HTTP/1.1`, and the
answer is rebuilt from the record exactly as the endpoint built it
(`endpoint.recorded_answer`). A fault that sent no answer (reset, close, hang) has
status 0 and `_error`, as browsers write a failed request. `_logx_mock` carries the id
and verdict. The document streams: `har_pieces` yields it entry by entry.
"""

from __future__ import annotations

import base64
import http
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from ..endpoint import recorded_answer
from ..model import RequestRecord, header
from .ndjson import body_bytes

__all__ = ["HAR_MEDIA_TYPE", "har_entry", "har_pieces"]

HAR_MEDIA_TYPE = "application/json"


def _creator() -> dict[str, str]:
    try:
        version = metadata.version("logx-mock")
    except metadata.PackageNotFoundError:  # run from a source tree
        version = "0"
    return {"name": "logx-mock", "version": version}


def _headers(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]


def _post_data(record: RequestRecord) -> dict[str, Any] | None:
    body = body_bytes(record)
    if body is None:
        return None
    data: dict[str, Any] = {"mimeType": header(record.headers, "content-type") or ""}
    try:
        data["text"] = body.decode("utf-8")
    except UnicodeDecodeError:  # HAR has no encoding for postData: say it, as Chrome does
        data["text"], data["_encoding"] = base64.b64encode(body).decode(), "base64"
    return data


def _status_text(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _response(record: RequestRecord) -> dict[str, Any]:
    answer = recorded_answer(record)
    content: dict[str, Any] = {
        "size": len(answer.body),
        "mimeType": header(answer.headers, "content-type") or "",
    }
    if answer.body:
        content["text"] = answer.body.decode("utf-8")
    return {
        "status": answer.status,
        "statusText": _status_text(answer.status),
        "httpVersion": "HTTP/1.1" if answer.status else "",
        "cookies": [],
        "headers": _headers(answer.headers),
        "content": content,
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": len(answer.body) if answer.status else -1,
    }


def har_entry(record: RequestRecord) -> dict[str, Any]:
    """One HAR 1.2 entry for a journaled request."""
    started = datetime.fromtimestamp(record.received_at, tz=timezone.utc)
    body = body_bytes(record)
    request: dict[str, Any] = {
        "method": record.method,
        "url": f"http://{record.host or 'localhost'}{record.path}",
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(record.headers),
        "queryString": [],
        "headersSize": -1,
        "bodySize": -1 if body is None else len(body),
    }
    post_data = _post_data(record)
    if post_data is not None:
        request["postData"] = post_data
    wait = float((record.fault or {}).get("delay_ms", 0))
    entry: dict[str, Any] = {
        "startedDateTime": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "time": wait,
        "request": request,
        "response": _response(record),
        "cache": {},
        "timings": {"send": 0, "wait": wait, "receive": 0},
        "_logx_mock": {"id": record.id, "source_id": record.source_id, "verdict": record.verdict},
    }
    if entry["response"]["status"] == 0:
        entry["_error"] = f"no answer: fault {(record.fault or {}).get('kind')}"
    return entry


def har_pieces(records: Iterable[RequestRecord]) -> Iterator[str]:
    """The HAR document in pieces: its head, each entry, its tail (ASCII JSON)."""
    head = {"version": "1.2", "creator": _creator()}
    yield '{"log":' + json.dumps(head)[:-1] + ',"entries":['
    first = True
    for record in records:
        yield ("" if first else ",") + json.dumps(har_entry(record), allow_nan=False)
        first = False
    yield "]}}"
