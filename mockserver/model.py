"""The neutral shapes every door speaks: a request in, an outcome out, and the
records the journal keeps.

Doors (the Starlette app, the respx routes, the httpx transport) translate
their native request into `CoreRequest` and render `Outcome` back; nothing in
here knows about any framework.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import msgspec

from .violations import Violation

if TYPE_CHECKING:
    from .faults import FaultAction

__all__ = [
    "DECISION_IDS",
    "EVENT_KINDS",
    "REFUSED",
    "VERDICTS",
    "WITH_EVENTS",
    "CoreRequest",
    "EventKind",
    "EventRecord",
    "Outcome",
    "RequestRecord",
    "Verdict",
    "header",
    "truthy",
]

Verdict = Literal["accepted", "rejected", "malformed", "too_large", "faulted", "not_found"]
"""What became of a request. Plain strings (JSON, SQLite and the admin API carry them as
they are); mypy checks every literal written against this type. `not_found`: a path the
endpoint does not serve (404) or a method it refuses (405); such a request has no events."""
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
WITH_EVENTS: tuple[Verdict, ...] = ("accepted", "rejected", "faulted")
"""The verdicts of requests whose payload was read, so they have events."""
REFUSED: tuple[Verdict, ...] = ("rejected", "malformed", "too_large", "not_found")
"""The verdicts of requests production would drop or refuse (a fault is asked for by the
test, so `faulted` is not one): what `assert_no_rejections` and `logx-mock check` fail on."""

EventKind = Literal["impression", "conversion"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)


def truthy(value: object) -> bool:
    """A yes as a header, a query parameter, a spec or JSON spells it: `true` or `1` (any
    case, spaces around), True or 1. Anything else is a no."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return value is True or (type(value) is int and value == 1)


def header(headers: Sequence[tuple[str, str]] | Mapping[str, str], name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, value in items:
        if key.lower() == wanted:
            return value
    return None


@dataclass
class CoreRequest:
    """A request as the core sees it, whatever door it came through.

    `too_large` is set by a door that stopped reading a body past the size
    limit, so the core can answer 413 without ever holding the whole body.
    """

    method: str
    path: str
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    host: str | None = None
    peer: str | None = None
    too_large: bool = False
    received_at: float = field(default_factory=time.time)
    _first: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None. The headers are
        indexed on the first look-up: a door hands them over complete."""
        return self._index().get(name.lower())

    def has_any_header(self, names: frozenset[str]) -> bool:
        """Whether any header is one of `names` (lowercase)."""
        return not names.isdisjoint(self._index())

    def _index(self) -> dict[str, str]:
        first = self._first
        if first is None:
            first = self._first = {}
            for key, value in self.headers:
                first.setdefault(key.lower(), value)
        return first


@dataclass
class Outcome:
    """What the door must answer: a status, headers and a body, and the record kept."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    record: RequestRecord | None = None
    fault: FaultAction | None = None
    """An injected fault for the door to render: a delay first, then maybe no HTTP answer."""


DECISION_IDS = ("campaign_id", "experiment_id", "variation_id", "is_campaign_holdback")
"""The fields of a decision itself; any other decision field is read from its metadata."""
_SENT_AS = {"experiment_key": "rule_key", "variation_key": "variation_key", "flag_key": "flag_key"}
"""Decision keys a datafile can name, and the metadata field an SDK sends each as."""


@dataclass(slots=True)
class EventRecord:
    """One `visitors[].snapshots[].events[]` entry, flattened with its context."""

    request_id: int
    index: int
    path: str
    verdict: Verdict
    kind: EventKind
    account_id: Any = None
    project_id: Any = None
    client_name: Any = None
    client_version: Any = None
    visitor_id: Any = None
    key: Any = None
    entity_id: Any = None
    uuid: Any = None
    timestamp: Any = None
    revenue: Any = None
    value: Any = None
    quantity: Any = None
    tags: Any = None
    properties: Any = None
    decisions: list[Any] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    duplicate: bool = False
    received_at: float = 0.0
    entity_key: str | None = None
    """The datafile's key for `entity_id` (a conversion's event key), when a datafile
    resolved it."""
    decision_keys: list[dict[str, str]] = field(default_factory=list)
    """Per decision, the datafile's `experiment_key`, `variation_key` and `flag_key` for its
    ids (aligned with `decisions`; empty without a datafile)."""

    @property
    def named_key(self) -> Any:
        """The event key as sent; for a conversion sent without one, the datafile's key of
        its `entity_id` (when a datafile resolved it)."""
        if self.key in (None, "") and self.entity_key is not None:
            return self.entity_key
        return self.key

    def decision_value(self, index: int, name: str) -> Any:
        """`name` of decision `index`: an id (`campaign_id`, `experiment_id`, `variation_id`,
        `is_campaign_holdback`) from the decision, anything else from its metadata; where the
        SDK sent no `experiment_key` (its metadata's `rule_key`), `variation_key` or `flag_key`
        (older SDKs send only ids), the key a datafile resolved."""
        decision = self.decisions[index] if index < len(self.decisions) else None
        if not isinstance(decision, dict):
            return None
        if name in DECISION_IDS:
            return decision.get(name)
        metadata = decision.get("metadata")
        value = (metadata if isinstance(metadata, dict) else {}).get(_SENT_AS.get(name, name))
        if name in _SENT_AS and value in (None, "") and index < len(self.decision_keys):
            value = self.decision_keys[index].get(name, value)
        return value

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict: values are shared, not copied (dataclasses.asdict deep-copies,
        which costs more than everything else the journal does with an event)."""
        return {name: getattr(self, name) for name in _EVENT_FIELD_NAMES}

    def __repr__(self) -> str:
        return (
            f"<EventRecord {self.kind} key={self.key!r} visitor_id={self.visitor_id!r} "
            f"uuid={self.uuid!r} request={self.request_id} {self.verdict}>"
        )


_EVENT_FIELD_NAMES = tuple(f.name for f in fields(EventRecord))

EventCells = tuple[Any, Any, Any, Any, Any, Any]
"""What the journal's writer reads of one event, as the hot path keeps it: (kind,
visitor_id, key, entity_id, uuid, timestamp), as sent."""


class CompactEvents(Protocol):
    """A request's events before they are `EventRecord`s (`flatten.CleanEvents`): the
    cells the writer needs, and how to build the records when someone reads them."""

    cells: list[EventCells]
    top: tuple[Any, Any, Any]
    """The batch's account_id, project_id and client_name, as sent (None when absent)."""
    visitors: int
    """How many visitors the batch has."""
    duplicates: set[int]
    """The indexes of the events history flagged as duplicates."""
    keys: list[tuple[Any, Any, Any]] | None
    """Each event's (entity_id, uuid, timestamp), once history has asked (`event_keys`)."""

    def path(self, index: int) -> str:
        """The JSON path of event `index`."""

    def build(self, record: RequestRecord) -> list[EventRecord]:
        """The `EventRecord`s of `record`, with its verdict and id as they are now."""


_UNREAD: Any = object()
"""`RequestRecord.payload` not decoded yet: `defer_payload` kept only its bytes."""


class _Payload:
    """The descriptor behind `RequestRecord.payload`: a value as set, or, after
    `defer_payload`, the record's `source` decoded on first read (and kept)."""

    def __get__(self, record: RequestRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return None  # the field's default
        value = record.__dict__["_payload"]
        if value is _UNREAD:
            # Two threads reading at once both decode, and keep equal values.
            value = record.__dict__["_payload"] = msgspec.json.decode(record.source or b"")
        return value

    def __set__(self, record: RequestRecord, value: Any) -> None:
        record.__dict__["_payload"] = value


@dataclass
class RequestRecord:
    """Everything the journal keeps of one request."""

    id: int
    received_at: float
    method: str
    path: str
    host: str | None
    headers: list[tuple[str, str]]
    client_ip: str | None
    strict: bool
    strict_header: str | None
    status: int
    verdict: Verdict
    errors: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    unknown_fields: list[Violation] = field(default_factory=list)
    payload: Any = _Payload()
    """The decoded body (None when it was not JSON, or not kept)."""
    raw: bytes | None = None
    fault: dict[str, Any] | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """The datafile's key for each id it resolved, by JSON path
    (`visitors[0].snapshots[0].decisions[0].experiment_id` -> `checkout_ab`; a decision's
    own path -> its flag key)."""
    source: bytes | None = field(default=None, repr=False, compare=False)
    """The decoded bytes `payload` was parsed from, so a journal can store them as they came."""
    action: FaultAction | None = field(default=None, repr=False, compare=False)
    """The fault plan's decision, for the door to render (kept as `fault` in the journal)."""
    source_id: int | None = None
    """For a request loaded by `logx-mock import`: its id in the journal it was exported
    from (it came judged: history is not applied to it again)."""
    compact: CompactEvents | None = field(default=None, repr=False, compare=False)
    """The events as the hot path keeps them until `events` is first read (a clean batch:
    the writer stores them from these cells, and most records are never asked for their
    `EventRecord`s)."""
    _events: list[EventRecord] = field(default_factory=list, repr=False, compare=False)

    def defer_payload(self, source: bytes) -> None:
        """Keep `source`, JSON that msgspec decodes (the hot path's typed decoder read it),
        as the body: `payload` is decoded from it when first read. Most records of a clean
        batch are stored and answered without anyone reading their payload."""
        self.source = source
        self.__dict__["_payload"] = _UNREAD

    @property
    def payload_is_read(self) -> bool:
        """False while `payload` is still only `source` (see `defer_payload`)."""
        return self.__dict__["_payload"] is not _UNREAD

    @property
    def events(self) -> list[EventRecord]:
        """Every event of the batch, flattened (built on first read when `compact`)."""
        compact = self.compact
        if compact is not None:
            # Built, then published: a reader on another thread sees the records or the
            # cells, never an empty list in between.
            self._events = compact.build(self)
            self.compact = None
        return self._events

    @events.setter
    def events(self, events: list[EventRecord]) -> None:
        self._events = events
        self.compact = None

    @property
    def event_count(self) -> int:
        """How many events the batch has (without building them)."""
        compact = self.compact
        return len(compact.cells) if compact is not None else len(self._events)

    def event_cells(self) -> list[EventCells]:
        """Each event's (kind, visitor_id, key, entity_id, uuid, timestamp): the compact
        cells, or read off the built records."""
        compact = self.compact
        if compact is not None:
            return compact.cells
        return [
            (e.kind, e.visitor_id, e.key, e.entity_id, e.uuid, e.timestamp) for e in self._events
        ]

    def event_keys(self) -> list[tuple[Any, Any, Any]]:
        """Each event's dedupe key (entity_id, uuid, timestamp), in order: made once for
        compact cells (the writer asks twice: for the journal's query, then for the flags)."""
        compact = self.compact
        if compact is None:
            return [(e.entity_id, e.uuid, e.timestamp) for e in self._events]
        keys = compact.keys
        if keys is None:
            keys = compact.keys = [(cell[3], cell[4], cell[5]) for cell in compact.cells]
        return keys

    def event_path(self, index: int) -> str:
        """The JSON path of event `index` (without building the records)."""
        compact = self.compact
        return compact.path(index) if compact is not None else self._events[index].path

    def flag_duplicate(self, index: int) -> None:
        """Flag event `index` as a duplicate (history's; without building the records)."""
        compact = self.compact
        if compact is not None:
            compact.duplicates.add(index)
        else:
            self._events[index].duplicate = True

    def set_id(self, request_id: int) -> None:
        """Give the request its journal id; its events take it too (when built; events
        built later take it then)."""
        self.id = request_id
        if self.compact is None:
            for event in self._events:
                event.request_id = request_id

    def set_verdict(self, verdict: Verdict) -> None:
        """Change the verdict (a fault); its events take it too, as `set_id` says."""
        self.verdict = verdict
        if self.compact is None:
            for event in self._events:
                event.verdict = verdict

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def to_dict(self, *, with_events: bool = True) -> dict[str, Any]:
        """A JSON-ready dict; `raw` is given as text (invalid UTF-8 replaced)."""
        data = {
            "id": self.id,
            "received_at": self.received_at,
            "method": self.method,
            "path": self.path,
            "host": self.host,
            "headers": [list(h) for h in self.headers],
            "client_ip": self.client_ip,
            "strict": self.strict,
            "strict_header": self.strict_header,
            "status": self.status,
            "verdict": self.verdict,
            "errors": [v.to_dict() for v in self.errors],
            "warnings": [v.to_dict() for v in self.warnings],
            "unknown_fields": [v.to_dict() for v in self.unknown_fields],
            "payload": self.payload,
            "raw": None if self.raw is None else self.raw.decode("utf-8", "replace"),
            "fault": self.fault,
            "keys": self.keys,
            "source_id": self.source_id,
            "event_count": self.event_count,
        }
        if with_events:
            data["events"] = [e.to_dict() for e in self.events]
        return data

    def __repr__(self) -> str:
        return (
            f"<RequestRecord id={self.id} {self.status} {self.verdict} "
            f"events={self.event_count} errors={len(self.errors)} warnings={len(self.warnings)}>"
        )
