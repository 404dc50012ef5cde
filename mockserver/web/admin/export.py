"""Admin operations that take the journal out and bring it back: `GET /export` streams the
NDJSON or HAR export, `POST /import` loads requests of an NDJSON export.

The export is read and serialized off the event loop, a chunk at a time (about 64 KB),
and each chunk is sent before the next is made: uvicorn pauses the sender while the
client reads slower than we write, so a slow reader holds one chunk, never the journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...endpoint import Endpoint
from ...errors import ConfigError
from ...export.ndjson import ExportLineError, as_imported, record_from_data
from ...export.schema import EXPORT_LINE_SCHEMA
from ...export.stream import FORMATS, export_chunks, media_type
from ...journal.base import EVENT_FILTERS
from ...model import RequestRecord
from ..openapi import BAD_QUERY, PAGING, PROBLEM, event_filters, json_content, obj, query
from .http import (
    BadQuery,
    JSONResponse,
    Operations,
    after_param,
    bounded_body,
    check_params,
    chosen_filters,
    problem_response,
)

__all__ = ["IMPORT_BODY_BYTES", "IMPORT_MAX_REQUESTS", "OPERATIONS", "SCHEMAS"]

OPERATIONS = Operations()
IMPORT_BODY_BYTES = 32_000_000
"""The largest `POST /import` body: one request of the 3.5 MB limit, escaped into JSON, fits
with room to spare (`logx-mock import --url` sends about 1 MB at a time)."""
IMPORT_MAX_REQUESTS = 10_000
"""The most requests one `POST /import` takes."""
_FILE_NAMES = {"ndjson": "logx-mock-export.ndjson", "har": "logx-mock-export.har"}


@OPERATIONS.add(
    "GET",
    "/export",
    {
        "summary": "The journal as NDJSON (one request per line) or HAR 1.2, streamed",
        "parameters": [
            query("format", {"enum": list(FORMATS)}, "ndjson (default) or har"),
            PAGING[0],
            *event_filters(),
        ],
        "responses": {
            "200": {
                "description": "The export, as a download; the filters keep the requests "
                "with an event that passes them all (`verdict` alone: requests of that "
                "verdict).",
                "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            "400": BAD_QUERY,
        },
    },
)
async def export(endpoint: Endpoint, request: Request) -> Response:
    try:
        check_params(request, {"format", "after", *EVENT_FILTERS})
        after = after_param(request)
        fmt = request.query_params.get("format", "ndjson")
        filters = chosen_filters(request)
        chunks = export_chunks(endpoint.journal, fmt, after=after, filters=filters)
    except (BadQuery, ConfigError) as exc:
        return problem_response(400, str(exc))
    # The first chunk before the answer starts: a journal that cannot be read gets a 503.
    first = await run_in_threadpool(next, chunks, b"")
    return StreamingResponse(
        _stream(first, chunks),
        media_type=media_type(fmt),
        headers={"content-disposition": f'attachment; filename="{_FILE_NAMES[fmt]}"'},
    )


async def _stream(first: bytes, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in iterate_in_threadpool(chunks):
        yield chunk


@OPERATIONS.add(
    "POST",
    "/import",
    {
        "summary": "Load requests of an NDJSON export (new ids; times and verdicts kept)",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": obj(
                        {
                            "requests": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ExportedRequest"},
                                "maxItems": IMPORT_MAX_REQUESTS,
                            }
                        },
                        ["requests"],
                    )
                }
            },
        },
        "responses": {
            "200": {"description": "Imported.", "content": json_content("Imported")},
            "400": {"description": "Not requests of an export.", "content": PROBLEM},
            "413": {"description": "The body is too large.", "content": PROBLEM},
        },
    },
)
async def import_requests(endpoint: Endpoint, request: Request) -> Response:
    body = await bounded_body(request, IMPORT_BODY_BYTES)
    if body is None:
        return problem_response(
            413, f"the body is over {IMPORT_BODY_BYTES:,} bytes; send fewer requests at a time"
        )
    try:
        records = await run_in_threadpool(_records, body)  # parsing megabytes: off the loop
    except ValueError as exc:
        return problem_response(400, f"{exc}; nothing was imported")
    committed = await asyncio.gather(*(endpoint.journal.commit(r) for r in records))
    ids = [record.id for record in committed]
    return JSONResponse(
        {
            "imported": len(ids),
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    )


def _records(body: bytes) -> list[RequestRecord]:
    """The requests of an import body, every one checked before any is journaled."""
    from ...contract.decoding import loads

    try:
        data = loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f'the body is not JSON ({exc}); send {{"requests": [...]}}') from None
    items = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError('send {"requests": [...]}: the lines of an export, as JSON objects')
    if len(items) > IMPORT_MAX_REQUESTS:
        raise ValueError(f"{len(items):,} requests at once; send at most {IMPORT_MAX_REQUESTS:,}")
    try:
        return [as_imported(record_from_data(item, n)) for n, item in enumerate(items, start=1)]
    except ExportLineError as exc:
        raise ValueError(f"request {exc.line} of the body: {exc.problem}") from None


SCHEMAS: dict[str, Any] = {
    "ExportedRequest": EXPORT_LINE_SCHEMA,
    "Imported": obj(
        {
            "imported": {"type": "integer"},
            "first_id": {"type": ["integer", "null"]},
            "last_id": {"type": ["integer", "null"]},
        },
        ["imported", "first_id", "last_id"],
    ),
}
