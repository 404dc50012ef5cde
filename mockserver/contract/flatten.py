"""Flatten a batch into one `EventRecord` per `visitors[].snapshots[].events[]` entry.

It runs on rejected batches too, so it never trusts a type: what is not the
shape the contract wants is skipped (containers) or kept as it came (scalars).
`flatten_clean` is the hot path's: for a batch the fast path (`quick.is_clean`) found
nothing to report about, and no datafile keys, it reads the dicts straight, without the
walk's positions (the same records, a third of the time). `CleanEvents` goes further: a
record keeps only the few cells per event the journal's writer reads (`RequestRecord.
compact`), and `flatten_clean` builds its records only if someone reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..batch import IMPRESSION_KEY, BatchAt, DecisionAt, Path, VisitorAt, walk
from ..model import EventCells, EventRecord, RequestRecord, Verdict

__all__ = ["CleanEvents", "flatten", "flatten_batch", "flatten_clean"]

_NO_KEYS: Mapping[Path, str] = {}


def _attributes(visitor: VisitorAt, keys: Mapping[Path, str]) -> dict[str, Any]:
    """The visitor's attributes as key -> value (the datafile's key, then entity_id, when
    the key is missing)."""
    result: dict[str, Any] = {}
    for attribute in visitor.attributes:
        if not attribute.is_object:
            continue
        name = attribute.get("key")
        if not name and keys:
            name = keys.get(attribute.at("entity_id"))
        name = name or attribute.get("entity_id")
        if isinstance(name, str):
            result[name] = attribute.get("value")
    return result


def _decision_keys(keys: Mapping[Path, str], decision: DecisionAt) -> dict[str, str]:
    """What the datafile resolved for the decision."""
    found = {
        "experiment_key": keys.get(decision.at("experiment_id")),
        "variation_key": keys.get(decision.at("variation_id")),
        "flag_key": keys.get(decision.path),
    }
    return {name: key for name, key in found.items() if key is not None}


def flatten(
    payload: Any,
    *,
    verdict: Verdict,
    received_at: float = 0.0,
    keys: Mapping[Path, str] | None = None,
) -> list[EventRecord]:
    """Every event of the batch, in payload order, with its batch and visitor context
    (and the datafile's keys for its ids, when `keys` from a datafile check is given:
    `crosscheck.resolve`, or `batch.parse_keys` of a stored record's keys)."""
    return flatten_batch(walk(payload), verdict=verdict, received_at=received_at, keys=keys)


def flatten_batch(
    batch: BatchAt,
    *,
    verdict: Verdict,
    received_at: float = 0.0,
    keys: Mapping[Path, str] | None = None,
) -> list[EventRecord]:
    """`flatten` over a walked batch."""
    if not batch.is_object:
        return []
    keys = keys or _NO_KEYS
    top = batch.fields
    account_id, project_id = top.get("account_id"), top.get("project_id")
    client_name, client_version = top.get("client_name"), top.get("client_version")
    records: list[EventRecord] = []
    for visitor in batch.visitors:
        if not visitor.is_object:
            continue
        attributes = _attributes(visitor, keys)
        visitor_id = visitor.fields.get("visitor_id")
        for snapshot in visitor.snapshots:
            found = [d for d in snapshot.decisions if d.is_object]
            decisions = [d.node for d in found]
            decision_keys = [_decision_keys(keys, d) for d in found] if keys else []
            for event in snapshot.events:
                if not event.is_object:
                    continue
                get = event.fields.get
                records.append(
                    EventRecord(
                        request_id=0,
                        index=len(records),
                        path=event.where,
                        verdict=verdict,
                        kind="impression" if event.is_impression else "conversion",
                        account_id=account_id,
                        project_id=project_id,
                        client_name=client_name,
                        client_version=client_version,
                        visitor_id=visitor_id,
                        key=get("key"),
                        entity_id=get("entity_id"),
                        uuid=get("uuid"),
                        timestamp=get("timestamp"),
                        revenue=get("revenue"),
                        value=get("value"),
                        quantity=get("quantity"),
                        tags=get("tags"),
                        properties=get("properties"),
                        decisions=decisions,
                        attributes=attributes,
                        received_at=received_at,
                        entity_key=keys.get(event.at("entity_id")) if keys else None,
                        decision_keys=decision_keys,
                    )
                )
    return records


def flatten_clean(
    payload: dict[str, Any], *, verdict: Verdict, received_at: float = 0.0
) -> list[EventRecord]:
    """`flatten(payload, verdict=..., received_at=...)` for a batch `quick.is_clean`
    accepted, without datafile keys: every level is the type the contract wants, so no
    position is needed to guard it (tests/test_quick.py checks both give the same)."""
    get_top = payload.get
    account_id, project_id = get_top("account_id"), get_top("project_id")
    client_name, client_version = get_top("client_name"), get_top("client_version")
    records: list[EventRecord] = []
    append = records.append
    for v, visitor in enumerate(payload["visitors"]):
        attributes: dict[str, Any] = {}
        for attribute in visitor.get("attributes") or ():
            name = attribute.get("key") or attribute.get("entity_id")
            if name.__class__ is str:
                attributes[name] = attribute["value"]
        visitor_id = visitor["visitor_id"]
        for s, snapshot in enumerate(visitor["snapshots"]):
            decisions = list(snapshot.get("decisions") or ())
            where = f"visitors[{v}].snapshots[{s}].events["
            for e, event in enumerate(snapshot["events"]):
                get = event.get
                key = get("key")
                impression = key == IMPRESSION_KEY or get("type") == IMPRESSION_KEY
                # Positional: a call with 22 keywords costs 3 µs, this one 0.6 (the
                # Hypothesis tests check the records equal `flatten`'s, made with keywords).
                append(
                    EventRecord(
                        0,  # request_id
                        len(records),  # index
                        f"{where}{e}]",  # path
                        verdict,
                        "impression" if impression else "conversion",  # kind
                        account_id,
                        project_id,
                        client_name,
                        client_version,
                        visitor_id,
                        key,
                        get("entity_id"),
                        get("uuid"),
                        get("timestamp"),
                        get("revenue"),
                        get("value"),
                        get("quantity"),
                        get("tags"),
                        get("properties"),
                        decisions,
                        attributes,
                        False,  # duplicate
                        received_at,
                    )
                )
    return records


class CleanEvents:
    """The events of a clean batch (as `flatten_clean` takes it) before they are records:
    per event `(kind, visitor_id, key, entity_id, uuid, timestamp)`, in payload order,
    with the batch's `top` cells (account_id, project_id, client_name), how many
    `visitors` it has, its `shape` (per snapshot, flat: the visitor's index, the
    snapshot's and how many events it has, so an event's path is known; plain ints in
    one list, which the cycle collector reads as one object) and the indexes of the
    events history flagged as `duplicates`.

    `RequestRecord.events` builds the records from the payload on first read, with the
    record's verdict, id and duplicate flags as they are then; a journal's writer stores
    the rows from the cells (`rows.event_rows`), and flags history from them
    (`history.apply_history`): a duplicate or an early conversion is told by its path,
    without building the records or decoding the payload."""

    __slots__ = ("cells", "duplicates", "keys", "shape", "top", "visitors")

    def __init__(
        self,
        cells: list[EventCells],
        top: tuple[Any, Any, Any],
        shape: list[int],
        visitors: int,
    ) -> None:
        """What `quick.clean_body` reads off the batch it found clean."""
        self.cells = cells
        self.top = top
        self.shape = shape
        self.visitors = visitors
        self.duplicates: set[int] = set()
        self.keys: list[tuple[Any, Any, Any]] | None = None  # RequestRecord.event_keys

    def path(self, index: int) -> str:
        """The JSON path of event `index` (as `flatten_clean` gives it)."""
        at, shape = index, self.shape
        for i in range(0, len(shape), 3):
            count = shape[i + 2]
            if at < count:
                return f"visitors[{shape[i]}].snapshots[{shape[i + 1]}].events[{at}]"
            at -= count
        raise IndexError(f"event {index} is past the batch's {len(self.cells)} events")

    def build(self, record: RequestRecord) -> list[EventRecord]:
        """`flatten_clean` of the record's payload, with its verdict, id and flags."""
        events = flatten_clean(
            record.payload, verdict=record.verdict, received_at=record.received_at
        )
        if record.id:
            for event in events:
                event.request_id = record.id
        for index in self.duplicates:
            events[index].duplicate = True
        return events
