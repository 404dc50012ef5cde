"""Admin answers bounded by size as well as count, encoded off the event loop.

Every event of a visitor carries the visitor's `attributes` and its snapshot's
`decisions`, so a batch of one 100 KB attribute and 2,000 tiny events once made a
201 MB answer (a 3.5 MB batch works out to ~66 GB). Here each shared context is
encoded once per answer (events of one snapshot share the objects), and an answer
stops once it holds `ANSWER_BYTES`, saying so (`truncated`) and where to go on from.
The one exception keeps every answer moving: its first item is always given whole,
and that is bounded by the 3.5 MB a batch may be.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.responses import Response

from ...model import EventRecord, RequestRecord

__all__ = [
    "ANSWER_BYTES",
    "Budget",
    "EventEncoder",
    "dumps",
    "encode_events",
    "encode_items",
    "encode_record",
    "encode_request",
    "encode_requests",
    "in_reader",
    "json_answer",
    "json_bytes_response",
]

_T = TypeVar("_T")

ANSWER_BYTES = 8 * 1024 * 1024
"""The most bytes an admin answer holds (beyond its first item); `limit` bounds the count."""
_SHARED = ("attributes", "decisions", "decision_keys")


def dumps(value: Any) -> bytes:
    """Compact JSON, non-ASCII escaped (lone surrogates survive), no NaN or Infinity."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


class Budget:
    """The bytes an answer may still take; the first item is always taken."""

    def __init__(self, limit: int = ANSWER_BYTES) -> None:
        self.left = limit
        self.taken = 0
        self.exhausted = False

    def take(self, size: int) -> bool:
        """Whether `size` more bytes fit (then they are counted); False marks it spent."""
        if self.taken and size > self.left:
            self.exhausted = True
            return False
        self.left -= size
        self.taken += 1
        return True


class EventEncoder:
    """Encodes events for one answer, each shared context (a visitor's attributes, a
    snapshot's decisions) once, whatever the number of events carrying it."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[object, bytes]] = {}

    def encode(self, event: EventRecord) -> bytes:
        data = event.to_dict()
        shared = [(name, data.pop(name)) for name in _SHARED]
        parts = [dumps(data)[:-1]]
        for name, value in shared:
            parts.append(b',"%s":%s' % (name.encode(), self._once(value)))
        parts.append(b"}")
        return b"".join(parts)

    def _once(self, value: object) -> bytes:
        hit = self._memo.get(id(value))
        if hit is None or hit[0] is not value:  # the object is kept, so its id stays its own
            hit = (value, dumps(value))
            self._memo[id(value)] = hit
        return hit[1]


def _wrap(name: str, parts: list[bytes], rest: dict[str, Any]) -> bytes:
    """`{"name": [parts...], **rest}` from encoded parts."""
    tail = b"," + dumps(rest)[1:] if rest else b"}"
    return b'{"%s":[%s]%s' % (name.encode(), b",".join(parts), tail)


def encode_items(name: str, items: Iterable[Any], rest: dict[str, Any]) -> bytes:
    """`{name: [items...], **rest}`, the items cut at `ANSWER_BYTES` (then with
    `"truncated": true`; short lists such as the fault plan rarely get near it)."""
    budget, parts = Budget(), []
    for item in items:
        part = dumps(item)
        if not budget.take(len(part) + 1):
            break
        parts.append(part)
    return _wrap(name, parts, {**rest, "truncated": True} if budget.exhausted else rest)


def encode_events(events: Sequence[EventRecord], rest: dict[str, Any]) -> bytes:
    """The events answer: `truncated` when the size bound cut it, and `next`, the
    `after` and `after_index` to go on from (None when it holds no event)."""
    budget, encoder, parts = Budget(), EventEncoder(), []
    last: EventRecord | None = None
    for event in events:
        part = encoder.encode(event)
        if not budget.take(len(part) + 1):
            break
        parts.append(part)
        last = event
    cursor = None if last is None else {"after": last.request_id, "after_index": last.index}
    return _wrap("events", parts, {**rest, "truncated": budget.exhausted, "next": cursor})


def encode_record(record: RequestRecord, budget: Budget, encoder: EventEncoder) -> bytes | None:
    """One request with as many of its events as fit (`events_left_off` counts the rest,
    which `/_mock/events?after=ID-1` pages through); None when the record does not fit."""
    head = dumps(record.to_dict(with_events=False))
    if not budget.take(len(head) + 1):
        return None
    parts = []
    for event in record.events:
        part = encoder.encode(event)
        if budget.exhausted or not budget.take(len(part) + 1):
            break
        parts.append(part)
    left_off = len(record.events) - len(parts)
    tail = b',"events_left_off":%d' % left_off if left_off else b""
    return head[:-1] + b',"events":[' + b",".join(parts) + b"]" + tail + b"}"


def encode_request(record: RequestRecord) -> bytes:
    """One request alone: with as many of its events as fit."""
    part = encode_record(record, Budget(), EventEncoder())
    assert part is not None  # a fresh budget always takes its first item
    return part


def encode_requests(
    records: Sequence[RequestRecord], rest: dict[str, Any], *, with_events: bool
) -> bytes:
    """The requests answer, cut at `ANSWER_BYTES` (`truncated`); a request whose events
    do not all fit ends it, with `events_left_off`."""
    budget, encoder, parts = Budget(), EventEncoder(), []
    for record in records:
        if with_events:
            part = encode_record(record, budget, encoder)
            if part is None:
                break
            parts.append(part)
            if budget.exhausted:
                break
        else:
            part = dumps(record.to_dict(with_events=False))
            if not budget.take(len(part) + 1):
                break
            parts.append(part)
    return _wrap("requests", parts, {**rest, "truncated": budget.exhausted})


def json_bytes_response(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="logx-mock-reader")
"""Journal reads and answer encoding for the admin API. Two threads at most: Python code
in a thread holds the interpreter lock too, and 50 long-polls scanning a big journal in
50 threads at once slowed every request the event loop serves (one POST took 4.4 s)."""


async def in_reader(work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`work(*args, **kwargs)` in a reader thread, the event loop free meanwhile."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_READERS, functools.partial(work, *args, **kwargs))


async def json_answer(encode: Callable[..., bytes], *args: Any, **kwargs: Any) -> Response:
    """`encode(*args, **kwargs)` in a reader thread, as a JSON answer."""
    return json_bytes_response(await in_reader(encode, *args, **kwargs))
