"""The NDJSON export: one request per line, with everything the journal holds of it.

A line is the admin API's request (`RequestRecord.to_dict`) with the body as it was
sent instead of `payload`/`raw`: `body` holds the JSON when it parsed, `body_base64`
the bytes when it did not (both null when the body was not kept: `too_large`). The
events are there too, as the journal flattened them (with their duplicate flags), for
readers such as `jq`; loading a line back flattens the body again, as a journal does.

`record_from_line` is the reader `import`, `check --url` and `replay` share: it refuses
anything that is not such a line, naming the line and what is wrong with it.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..batch import parse_keys
from ..contract.decoding import loads
from ..contract.flatten import flatten
from ..errors import LogxMockError
from ..model import WITH_EVENTS, RequestRecord
from ..violations import Violation, json_type, shown
from .schema import EXPORT_LINE_SCHEMA

__all__ = [
    "NDJSON_MEDIA_TYPE",
    "ExportLineError",
    "as_imported",
    "body_bytes",
    "count_export",
    "export_dict",
    "export_line",
    "read_export",
    "record_from_data",
    "record_from_line",
]

NDJSON_MEDIA_TYPE = "application/x-ndjson"
_WHAT = "import reads what `logx-mock export` writes (NDJSON: one request per line; not HAR)"


class ExportLineError(LogxMockError, ValueError):
    """A line that is not a request of an NDJSON export; `line` counts from 1."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


def body_bytes(record: RequestRecord) -> bytes | None:
    """The body the journal kept: the unparsed bytes, else the JSON (as it came, when
    known), else None (not kept)."""
    if record.raw is not None:
        return record.raw
    if record.source is not None:
        return record.source
    if record.payload is None:
        return None
    return json.dumps(record.payload, separators=(",", ":")).encode()


def export_dict(record: RequestRecord) -> dict[str, Any]:
    """The line's object for one request."""
    data = record.to_dict()
    del data["payload"], data["raw"], data["event_count"]
    data["body"] = record.payload if record.raw is None else None
    data["body_base64"] = None if record.raw is None else base64.b64encode(record.raw).decode()
    return data


def export_line(record: RequestRecord) -> str:
    """One line of the export (without its newline), ASCII: a body may hold lone
    surrogates, which only a `\\u` escape can carry."""
    return json.dumps(export_dict(record), separators=(",", ":"), allow_nan=False)


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator  # imported when a line is first read

    Draft202012Validator.check_schema(EXPORT_LINE_SCHEMA)
    return Draft202012Validator(EXPORT_LINE_SCHEMA)


def _reason(error: Any) -> str:
    """What is wrong at the error's place, without echoing a long value back."""
    where = error.json_path
    if error.validator == "required" and where == "$":
        return f"not a request: {error.message}; {_WHAT}"
    if error.validator == "type":
        expected = error.validator_value
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where} must be {wanted}, got {json_type(error.instance)}"
    if error.validator == "not":
        return "has both 'body' and 'body_base64'; a request keeps one of them"
    if error.validator == "enum":
        return (
            f"{where} is {shown(error.instance)}; use {', '.join(map(str, error.validator_value))}"
        )
    if error.validator == "pattern":
        return f"{where} is {shown(error.instance)}, which does not match {error.validator_value}"
    return f"{where}: {shown(error.message, 200)}"


def _checked(data: Any, number: int) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ExportLineError(number, f"a request is a JSON object, not {json_type(data)}; {_WHAT}")
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(data))
    if error is not None:
        raise ExportLineError(number, _reason(error))
    return data


def record_from_line(text: str | bytes, number: int) -> RequestRecord:
    """The request of one export line, its events flattened again from its body.
    Raises `ExportLineError`."""
    try:
        data = loads(text)
    except (ValueError, RecursionError) as exc:
        raise ExportLineError(number, f"not JSON ({exc}); {_WHAT}") from None
    return record_from_data(data, number)


def record_from_data(data: Any, number: int) -> RequestRecord:
    """`record_from_line` for a line already parsed (an item of `POST /_mock/import`)."""
    data = _checked(data, number)
    raw = None
    if data["body_base64"] is not None:
        raw = base64.b64decode(data["body_base64"], validate=True)  # the schema's pattern
    record = RequestRecord(
        id=data["id"],
        received_at=float(data["received_at"]),
        method=data["method"],
        path=data["path"],
        host=data["host"],
        headers=[(name, value) for name, value in data["headers"]],
        client_ip=data["client_ip"],
        strict=data["strict"],
        strict_header=data["strict_header"],
        status=data["status"],
        verdict=data["verdict"],
        errors=[Violation.from_dict(v) for v in data["errors"]],
        warnings=[Violation.from_dict(v) for v in data["warnings"]],
        unknown_fields=[Violation.from_dict(v) for v in data["unknown_fields"]],
        payload=data["body"],
        raw=raw,
        fault=data["fault"],
        keys=data["keys"],
        source_id=data.get("source_id"),
    )
    if record.verdict in WITH_EVENTS:
        duplicates = {e.get("index") for e in data["events"] if e.get("duplicate") is True}
        record.events = flatten(
            record.payload,
            verdict=record.verdict,
            received_at=record.received_at,
            keys=parse_keys(record.keys),
        )
        for event in record.events:
            event.duplicate = event.index in duplicates
    return record


def as_imported(record: RequestRecord) -> RequestRecord:
    """`record` made ready for another journal: its id becomes its `source_id` (the
    journal gives it a new one)."""
    record.source_id, record.id = record.id, 0
    for event in record.events:
        event.request_id = 0
    return record


def count_export(lines: Iterable[str | bytes]) -> int:
    """How many requests an export holds, every line checked (`ExportLineError`)."""
    return sum(1 for _ in read_export(lines))


def read_export(lines: Iterable[str | bytes]) -> Iterator[RequestRecord]:
    """The requests of an export, line by line (blank lines are skipped)."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield record_from_line(line, number)
