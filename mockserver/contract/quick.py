"""The fast path: does a batch pass validation with nothing at all to report?

`is_clean(payload, now_ms)` answers in C for most of the work: the field table
(`batch.FIELDS`) is compiled, level by level, into msgspec `Struct` types that accept only
what the validator would find no error, warning or note in (every field of its JSON type,
required fields present, ids non-empty, no unknown field, integers within 64 bits, known
regions and rule types, non-empty `visitors`, `snapshots` and `events`), and
`msgspec.convert` checks the decoded payload against them. What no type can say (the
timestamps' range against the receive time, impressions against their decisions, revenue
or value only in tags) is then checked on the typed result in a short loop.

It only ever says "clean" or "not sure": a batch it does not accept goes to the full
validator (`validation.check`), which reports every violation with its path. So the two
can only disagree in one direction, and tests/test_quick.py checks with Hypothesis, on
random and mutated SDK batches, that `is_clean` accepts exactly what `validate` reports
nothing about.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec

from ..batch import FIELDS, IMPRESSION_KEY, Field, Level
from ..model import EventCells
from .flatten import CleanEvents
from .validation import _FUTURE_SLACK_MS, _SECONDS_CEILING, INT64_MAX, REGIONS, RULE_TYPES

__all__ = ["clean_body", "clean_cells", "is_clean"]

_SCALAR = Union[str, int, float, bool]  # noqa: UP007 (a runtime type for msgspec)
_NON_EMPTY = msgspec.Meta(min_length=1)
_KINDS: dict[str, Any] = {
    "string": str,
    "boolean": bool,
    "integer": Annotated[int, msgspec.Meta(ge=-INT64_MAX - 1, le=INT64_MAX)],
    "number": Union[int, float],  # noqa: UP007 (any int, as the validator; never a bool)
    "scalar": _SCALAR,
}
_VALUES: dict[str, Any] = {"string": str, "scalar": _SCALAR}
_ENUMS: dict[tuple[Level, str], Any] = {
    ("batch", "region"): Literal[tuple(sorted(REGIONS))],
    ("metadata", "rule_type"): Literal[tuple(sorted(RULE_TYPES))],
}
"""Fields whose other values the validator warns about."""
_NOT_EMPTY = {("batch", "account_id"), ("batch", "visitors")}
"""Fields whose empty value is an error (ids are warned about: `Field.id_like`)."""
_WARNED_EMPTY = {("visitor", "snapshots"), ("snapshot", "events")}
"""Arrays whose emptiness is warned about."""


def _field_type(level: Level, name: str, spec: Field, structs: dict[Level, Any]) -> Any:
    if (level, name) in _ENUMS:
        return _ENUMS[(level, name)]
    if spec.level is not None:
        item = structs[spec.level]
        kind: Any = list.__class_getitem__(item) if spec.kind == "array" else item
    elif spec.values is not None:
        kind = dict.__class_getitem__((str, _VALUES[spec.values]))
    else:
        kind = _KINDS[spec.kind]
    non_empty = spec.id_like or (level, name) in _NOT_EMPTY | _WARNED_EMPTY
    return Annotated[kind, _NON_EMPTY] if non_empty else kind


def _structs() -> dict[Level, Any]:
    """One Struct per level, innermost first, from the field table."""
    structs: dict[Level, Any] = {}
    pending = list(FIELDS)
    while pending:
        for level in list(pending):
            fields = FIELDS[level]
            if any(s.level is not None and s.level not in structs for s in fields.values()):
                continue
            members: list[tuple[str, Any] | tuple[str, Any, Any]] = []
            for name, spec in fields.items():
                kind = _field_type(level, name, spec, structs)
                if spec.required:
                    members.append((name, kind))
                else:
                    members.append((name, kind | msgspec.UnsetType, msgspec.UNSET))
            structs[level] = msgspec.defstruct(
                f"Clean{level.capitalize()}",
                members,
                kw_only=True,
                gc=False,  # typed values only: nothing for the cycle collector to track
                forbid_unknown_fields=True,
                omit_defaults=True,
            )
            pending.remove(level)
    return structs


_STRUCTS = _structs()
_BATCH = _STRUCTS["batch"]
_TYPED = msgspec.json.Decoder(_BATCH)
_UNSET = msgspec.UNSET
_REFUSED = (msgspec.DecodeError, UnicodeError)
"""What msgspec raises for what it will not take: a type or JSON error, invalid UTF-8 in a
string (UnicodeDecodeError), a lone surrogate it cannot put in its own message."""


def is_clean(payload: Any, now_ms: int) -> bool:
    """True when the validator would report nothing about `payload` (received at
    `now_ms`); False when it may (then run the full validator for the report)."""
    return clean_cells(payload, now_ms) is not None


def clean_cells(payload: Any, now_ms: int) -> list[EventCells] | None:
    """`is_clean`, and for a clean batch the cells of its events (`flatten.CleanEvents`:
    kind, visitor_id, key, entity_id, uuid, timestamp), read off the typed batch in the
    same pass; None when the batch may not be clean."""
    try:
        batch = msgspec.convert(payload, _BATCH)
    except _REFUSED:
        return None
    clean = _clean_events(batch, now_ms)
    return None if clean is None else clean.cells


def clean_body(body: bytes, now_ms: int) -> tuple[CleanEvents, bool] | None:
    """`is_clean` of the JSON in `body` (plain bytes), decoded straight into the typed
    batch, without the dicts (the endpoint's hot path): its events, and whether its
    client address is to be anonymized (`anonymize_ip` is not false). None when the
    body may not be a clean batch (not JSON, or a report to give: decode it and run
    the full validator).

    A key sent twice in one object is checked at each occurrence, and the last one
    counts, as in the decoded dict; an occurrence the validator would not see (an
    earlier one with a bad value) can only make this say "not sure"."""
    try:
        batch = _TYPED.decode(body)
    except _REFUSED:
        return None
    clean = _clean_events(batch, now_ms)
    return None if clean is None else (clean, batch.anonymize_ip is not False)


def _clean_events(batch: Any, now_ms: int) -> CleanEvents | None:
    """What no type says about a typed batch (timestamps against the receive time,
    impressions against their decisions, revenue or value only in tags), checked while
    its events' cells are read; None at the first thing the validator would report."""
    future = now_ms + _FUTURE_SLACK_MS
    cells: list[EventCells] = []
    append = cells.append
    shape: list[int] = []
    visitors = batch.visitors
    for v, visitor in enumerate(visitors):
        visitor_id = visitor.visitor_id
        for s, snapshot in enumerate(visitor.snapshots):
            decisions = snapshot.decisions
            events = snapshot.events
            shape += (v, s, len(events))
            for event in events:
                stamp = event.timestamp
                if stamp < _SECONDS_CEILING or stamp > future:
                    return None
                tags = event.tags
                if tags is not _UNSET and (
                    ("revenue" in tags and event.revenue is _UNSET)
                    or ("value" in tags and event.value is _UNSET)
                ):
                    return None
                key, entity = event.key, event.entity_id
                if key == IMPRESSION_KEY or event.type == IMPRESSION_KEY:
                    if decisions is _UNSET or not decisions:
                        return None
                    if entity is not _UNSET:
                        for decision in decisions:  # a loop, not all(): no generator per event
                            if decision.campaign_id == entity:
                                break
                        else:
                            return None
                    kind = "impression"
                else:
                    kind = "conversion"
                append(
                    (
                        kind,
                        visitor_id,
                        None if key is _UNSET else key,
                        None if entity is _UNSET else entity,
                        event.uuid,
                        stamp,
                    )
                )
    top = (
        batch.account_id,
        None if batch.project_id is _UNSET else batch.project_id,
        None if batch.client_name is _UNSET else batch.client_name,
    )
    return CleanEvents(cells, top, shape, len(visitors))
