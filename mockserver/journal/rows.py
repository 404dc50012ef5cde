"""A request as table rows, and back: what the SQLite and PostgreSQL journals store.

A request is one row (`verdict`, its metadata as JSON text without the fields that are
empty, the body as it came) and one row per flattened event (the columns the filters
search, and the duplicate flag the writer decided). Events are not stored twice: reading
a request flattens its stored payload again.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from ..batch import parse_keys
from ..contract.flatten import flatten
from ..model import WITH_EVENTS, EventRecord, RequestRecord
from ..violations import Violation
from .filters import COLUMN_FILTERS, as_text, column_values

__all__ = [
    "EMPTY_META",
    "EVENT_COLUMNS",
    "META_FIELDS",
    "REQUEST_COLUMNS",
    "body_cells",
    "event_row",
    "event_rows",
    "meta_text",
    "record_from_row",
    "text_cell",
    "timestamp_cell",
]

EVENT_COLUMNS = COLUMN_FILTERS
"""The event columns: one per filter on the event itself, holding the text form it
compares (`filters.column_values`; `key` holds the key as sent, or the datafile's key of
a conversion sent without one); a new column is a new schema version of both stores.
Decision filters have no column: they are compared on the events read back."""
REQUEST_COLUMNS = "id, verdict, meta, body, body_is_json"
META_FIELDS = (
    "received_at",
    "method",
    "path",
    "host",
    "client_ip",
    "strict",
    "strict_header",
    "status",
    "fault",
    "keys",
    "source_id",
)
"""The request's fields its stored meta holds (with its headers and reports), in order."""
EMPTY_META = ("fault", "keys", "source_id", "errors", "warnings", "unknown_fields")
"""The fields the stored meta leaves out when they are empty (None, {} or []), as most
requests' are: ~120 of a one-impression request's ~390 bytes, which every commit wrote and
every checkpoint copied (schema version 5 of the SQLite journal, 4 of the PostgreSQL one;
reading fills them in, so older rows that hold them read the same)."""


_ENCODE = msgspec.json.Encoder().encode


_INT64 = 2**63


def timestamp_cell(value: Any) -> int | None:
    """An event timestamp as a 64-bit integer cell, or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _INT64:
        return value
    return None


def body_cells(record: RequestRecord) -> tuple[bytes | None, bool]:
    """The body to store and whether it is JSON: the decoded bytes as they came, the
    unparsed text, or the payload serialized (raises for a payload JSON cannot hold)."""
    if record.raw is not None:
        return record.raw, False
    if record.source is not None:
        return record.source, True
    return json.dumps(record.payload).encode(), True


def meta_text(record: RequestRecord) -> str:
    """Everything but the body and the events, as ASCII JSON (any database's text); the
    `EMPTY_META` fields only when they are not empty."""
    errors, warnings, notes = record.errors, record.warnings, record.unknown_fields
    meta: dict[str, Any] = {  # `META_FIELDS`, written out (a getattr each cost more)
        "received_at": record.received_at,
        "method": record.method,
        "path": record.path,
        "host": record.host,
        "client_ip": record.client_ip,
        "strict": record.strict,
        "strict_header": record.strict_header,
        "status": record.status,
        "headers": record.headers,
    }
    if record.fault is not None:
        meta["fault"] = record.fault
    if record.keys:
        meta["keys"] = record.keys
    if record.source_id is not None:
        meta["source_id"] = record.source_id
    if errors:
        meta["errors"] = [v.to_dict() for v in errors]
    if warnings:
        meta["warnings"] = [v.to_dict() for v in warnings]
    if notes:
        meta["unknown_fields"] = [v.to_dict() for v in notes]
    # Strings, numbers, the fault and keys encode in C, 5x faster; kept only when ASCII, as
    # json.dumps writes it. A violation may carry any value the payload held (an infinity
    # from `1e400`, which msgspec would write as null): then json.dumps writes it as it was.
    reported = errors or warnings or notes
    if not reported or all(_encodes_alike(v.actual) for v in (*errors, *warnings, *notes)):
        try:
            data = _ENCODE(meta)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            pass
        else:
            if data.isascii():
                return data.decode()
    return json.dumps(meta)


def _encodes_alike(value: Any) -> bool:
    """Whether msgspec writes `value` as json.dumps does, for json.loads: a string, an
    integer, a bool, None or a finite float (not a container: it may hold anything)."""
    kind = value.__class__
    return value is None or kind in (str, int, bool) or (kind is float and math.isfinite(value))


def event_row(event: EventRecord, *, clean: bool = False) -> tuple[Any, ...]:
    """(request_id, idx, the filter columns..., timestamp, duplicate); `clean` maps NUL
    to U+FFFD, which PostgreSQL text cannot hold (filter values get the same), and keeps
    the duplicate flag a bool (PostgreSQL's column is boolean; SQLite's gets 1 or 0)."""
    cells = column_values(event)
    duplicate: bool | int = event.duplicate
    if clean:
        cells = tuple(text_cell(cell) for cell in cells)
    else:
        duplicate = 1 if duplicate else 0
    stamp = event.timestamp
    if stamp.__class__ is not int or not -_INT64 < stamp < _INT64:
        stamp = timestamp_cell(stamp)
    return (event.request_id, event.index, *cells, stamp, duplicate)


def event_rows(record: RequestRecord) -> list[tuple[Any, ...]]:
    """`event_row` of each of the record's events; from its compact cells when it has them
    (a clean batch: no datafile keys; its duplicate flags by index), without building the
    records. The duplicate flag is 1 or 0, not a bool: sqlite3 binds an int, a str or a
    float directly, but looks a bool (or None, or bytes) up in its adapters first, ~0.3 µs a
    cell (1.5 ms of a 3.5 MB batch's 5,762 events)."""
    compact = record.compact
    if compact is None:
        return [event_row(event) for event in record.events]
    account_id, project_id, client_name = map(as_text, compact.top)  # the payload unread
    verdict, request_id, duplicates = record.verdict, record.id, compact.duplicates
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for index, (kind, visitor_id, key, entity_id, uuid, stamp) in enumerate(compact.cells):
        if stamp.__class__ is not int or not -_INT64 < stamp < _INT64:
            stamp = timestamp_cell(stamp)
        # As `column_values` (an ASCII string is its own text), in `EVENT_COLUMNS` order.
        append(
            (
                request_id,
                index,
                visitor_id
                if visitor_id.__class__ is str and visitor_id.isascii()
                else as_text(visitor_id),
                key if key.__class__ is str and key.isascii() else as_text(key),
                kind,
                entity_id
                if entity_id.__class__ is str and entity_id.isascii()
                else as_text(entity_id),
                uuid if uuid.__class__ is str and uuid.isascii() else as_text(uuid),
                account_id,
                project_id,
                client_name,
                verdict,
                stamp,
                1 if index in duplicates else 0,
            )
        )
    return rows


def text_cell(value: Any) -> str | None:
    """A filter column or filter value as PostgreSQL text: `as_text`, NUL as U+FFFD."""
    text = as_text(value)
    return None if text is None else text.replace("\x00", "\ufffd")


def record_from_row(row: Any, duplicates: set[int]) -> RequestRecord:
    """A request from its row; its events are flattened again from the stored payload,
    with the duplicate flags the writer decided (`duplicates`: their indexes)."""
    request_id, verdict, meta_json, body, body_is_json = row
    meta = json.loads(meta_json)
    record = RequestRecord(  # an `EMPTY_META` field left out takes the record's default
        id=request_id,
        verdict=verdict,
        headers=[(k, v) for k, v in meta.pop("headers")],
        errors=[Violation.from_dict(v) for v in meta.pop("errors", ())],
        warnings=[Violation.from_dict(v) for v in meta.pop("warnings", ())],
        unknown_fields=[Violation.from_dict(v) for v in meta.pop("unknown_fields", ())],
        **meta,
    )
    if body_is_json and body is not None:
        record.payload = json.loads(body)
        if record.payload is not None:  # `null`: no body was kept (too_large)
            record.source = bytes(body)  # the body as it came: exports give it back as such
    elif body is not None:
        record.raw = bytes(body)
    if verdict in WITH_EVENTS:
        record.events = flatten(
            record.payload,
            verdict=verdict,
            received_at=record.received_at,
            keys=parse_keys(record.keys),
        )
        for event in record.events:
            event.request_id = request_id
            event.duplicate = event.index in duplicates
    return record
