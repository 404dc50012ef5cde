"""Which requests an export holds, and the export as a stream of chunks.

The journal is read with `Journal.scan` (a few hundred requests at a time) up to the
newest request when the export starts, and written out in chunks of about
`CHUNK_BYTES`: memory holds one chunk of requests and one chunk of output, whatever the
journal's size (benchmarks/EXPORT.md measures it on a million requests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, get_args

from ..errors import ConfigError
from ..journal.base import Journal
from ..journal.filters import check_filters, event_matches
from ..model import RequestRecord
from .har import HAR_MEDIA_TYPE, har_pieces
from .ndjson import NDJSON_MEDIA_TYPE, export_line

__all__ = [
    "CHUNK_BYTES",
    "FORMATS",
    "ExportFormat",
    "export_chunks",
    "exported",
    "media_type",
    "request_matches",
]

ExportFormat = Literal["ndjson", "har"]
FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
CHUNK_BYTES = 64 * 1024


def media_type(fmt: str) -> str:
    """The Content-Type of an export format; ConfigError names the formats there are."""
    if fmt == "ndjson":
        return NDJSON_MEDIA_TYPE
    if fmt == "har":
        return HAR_MEDIA_TYPE
    raise ConfigError(f"format={fmt!r} is not an export format; use {' or '.join(FORMATS)}")


def request_matches(record: RequestRecord, filters: Mapping[str, str]) -> bool:
    """Whether an export with these event filters holds `record`: one of its events
    passes them all; a `verdict` filter alone also holds requests without events."""
    if not filters:
        return True
    if set(filters) == {"verdict"}:
        return record.verdict == filters["verdict"]
    return any(event_matches(event, dict(filters)) for event in record.events)


def exported(
    journal: Journal, *, after: int = 0, filters: Mapping[str, str] | None = None
) -> Iterator[RequestRecord]:
    """The requests with an id above `after`, up to the newest one now, that match
    `filters` (the event filters of `/_mock/events`), oldest first. Unknown filters are
    refused at once (ConfigError), before the journal is read."""
    wanted = dict(filters or {})
    check_filters(wanted)
    return _matching(journal.scan(after=after, until=journal.last_id), wanted)


def _matching(records: Iterator[RequestRecord], filters: dict[str, str]) -> Iterator[RequestRecord]:
    return (record for record in records if request_matches(record, filters))


def _pieces(records: Iterable[RequestRecord], fmt: str) -> Iterator[str]:
    if fmt == "har":
        yield from har_pieces(records)
        return
    for record in records:
        yield export_line(record) + "\n"


def export_chunks(
    journal: Journal,
    fmt: str,
    *,
    after: int = 0,
    filters: Mapping[str, str] | None = None,
) -> Iterator[bytes]:
    """The export document (`ndjson` or `har`) in chunks of about `CHUNK_BYTES`.

    The format and filters are checked at once (ConfigError); the journal is read as the
    chunks are taken."""
    media_type(fmt)
    return _chunked(_pieces(exported(journal, after=after, filters=filters), fmt))


def _chunked(pieces: Iterable[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode("ascii")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("ascii")
