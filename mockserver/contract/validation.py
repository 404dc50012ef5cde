"""The contract of the Log Endpoint's body, as rules over a decoded JSON object.

`validate(payload)` walks the batch once and returns a `Report`: **errors**
(the batch is unusable: 400 in strict mode, silently dropped otherwise),
**warnings** (accepted, but the data would probably not count in results) and
**notes** (unknown fields, which both modes tolerate). Rules that need the
history of earlier requests (duplicates, conversions before any decision) live
in `history.py`, because only the journal knows that history.
"""

from __future__ import annotations

import difflib
import time
from typing import Any

from ..batch import (
    FIELDS,
    BatchAt,
    EventAt,
    Field,
    Level,
    Position,
    SnapshotAt,
    VisitorAt,
    is_impression,
    walk,
)
from ..batch import join as join_path
from ..violations import Report, describe, json_type

__all__ = [
    "ERROR_RULES",
    "INT64_MAX",
    "MAX_DEPTH",
    "SCHEMA",
    "WARNING_RULES",
    "Field",
    "check",
    "is_impression",
    "join_path",
    "validate",
]

INT64_MAX = 2**63 - 1
MAX_DEPTH = 32
"""How deep free-form values (tags, unknown fields, ...) may nest; deeper is malformed."""

ERROR_RULES = {
    "json": "the body is not JSON (or not UTF-8, or gzip that does not inflate)",
    "object": "the body is JSON but not an object",
    "size": "the body, decompressed, is over 3.5 MB",
    "required": "a required field is missing",
    "type": "a field has the wrong JSON type",
    "range": "timestamp, revenue or quantity does not fit in 64 bits",
    "empty": "account_id is empty, or visitors is an empty array",
    "depth": "a value nests deeper than 32 levels (the batch is malformed)",
    "path": "the request went to a path other than /v1/events (404, verdict not_found)",
    "method": "the request's method is not POST or OPTIONS (405, verdict not_found)",
}
"""Rules that make a batch unusable (400 strict, silently dropped permissive)."""

WARNING_RULES = {
    "empty_id": "an id is null or empty (visitor_id, campaign_id, experiment_id, ...)",
    "timestamp_seconds": "a timestamp looks like seconds, not milliseconds",
    "timestamp_future": "a timestamp is more than a day in the future",
    "impression_mismatch": "an impression's entity_id is not its decision's campaign_id",
    "impression_without_decision": "an impression's snapshot has no decision",
    "revenue_only_in_tags": "revenue is in tags but not on the event",
    "value_only_in_tags": "value is in tags but not on the event",
    "nothing_to_record": "snapshots or events is an empty array",
    "region": "region is not US or EU",
    "rule_type": "decision metadata has an unknown rule_type",
    "content_type": "Content-Type is not application/json",
    "duplicate_event": "the same entity_id, uuid and timestamp arrived before",
    "conversion_before_decision": "a visitor converted before any impression was recorded",
}
"""Rules that never change the status: the data would probably not count in results."""
_SECONDS_CEILING = 100_000_000_000  # below this an epoch timestamp is seconds, not ms
_FUTURE_SLACK_MS = 24 * 3600 * 1000
RULE_TYPES = {"experiment", "feature-test", "rollout", "holdout", "targeted-delivery", "a/b"}
REGIONS = {"US", "EU"}

SCHEMA = FIELDS
"""The field table the validator checks against (`batch.FIELDS`, where the walker and the
OpenAPI document read it too)."""

_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "scalar": (str, int, float, bool),
}


def _matches(kind: str, value: Any) -> bool:
    """Does a decoded JSON value have this kind? (`bool` is not an integer in JSON.)"""
    if value.__class__ is bool:
        return kind in ("boolean", "scalar")
    return isinstance(value, _KIND_TYPES[kind])


_MISSING = object()


def _compile(fields: dict[str, Field]) -> tuple[tuple[Any, ...], frozenset[str]]:
    checks = tuple(
        (
            name,
            spec,
            _KIND_TYPES[spec.kind],
            spec.kind in ("boolean", "scalar"),
            spec.kind == "integer",  # every integer of the batch is an int64
        )
        for name, spec in fields.items()
    )
    return checks, frozenset(fields)


_LEVELS = {level: _compile(fields) for level, fields in SCHEMA.items()}


def _check_object(obj: dict[str, Any], level: Level, at: Position, report: Report) -> None:
    """Required fields, types and unknown fields of one object of the batch.

    This runs for every object of every batch, so the per-field work is precompiled
    (`_LEVELS`) and paths are only rendered for fields that have something to report.
    """
    checks, names = _LEVELS[level]
    for name, spec, types, bool_ok, wide in checks:
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            if spec.required:
                here = at.where_of(name)
                report.error(here, "required", f"'{name}' is required", spec.kind, None)
            continue
        if spec.id_like and (value is None or value == ""):
            state = "null" if value is None else "empty"
            report.warn(
                at.where_of(name),
                "empty_id",
                f"'{name}' is {state}: Optimizely cannot attribute this to anything",
                "a non-empty string",
                value,
            )
            continue
        if bool_ok if value.__class__ is bool else isinstance(value, types):
            if wide and not -INT64_MAX - 1 <= value <= INT64_MAX:
                here = at.where_of(name)
                report.error(here, "range", f"'{name}' does not fit in 64 bits", "int64", value)
            continue
        here = at.where_of(name)
        report.error(
            here,
            "type",
            f"'{name}' must be {_article(spec.kind)}, got {json_type(value)}",
            spec.kind,
            value,
        )
        _check_depth(value, here, report)
    if names.issuperset(obj):
        return
    fields = SCHEMA[level]
    for name in obj:
        if name not in names:
            here = at.where_of(name)
            report.note(here, "unknown_field", _unknown(name, fields))
            _check_depth(obj[name], here, report)


def _nests_deeper(value: Any, limit: int) -> bool:
    """True when `value` holds containers more than `limit` levels deep (iterative)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def _check_depth(value: Any, path: str, report: Report) -> None:
    """Free-form values the validator does not walk must not nest without bound: the
    journal stores and serves them, and nothing may recurse forever on them."""
    if isinstance(value, dict | list) and _nests_deeper(value, MAX_DEPTH):
        report.error(
            path,
            "depth",
            f"this value nests deeper than {MAX_DEPTH} levels; flatten it",
            f"at most {MAX_DEPTH} levels",
            value,
        )


def _unknown(name: str, fields: dict[str, Field]) -> str:
    close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.6)
    if not close:
        close = [f for f in fields if f.replace("_", "") == name.lower().replace("_", "")]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown field '{name}' is ignored by Optimizely{hint}"


def _article(kind: str) -> str:
    if kind == "scalar":
        return "a string, number or boolean"
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _checked(item: Position, report: Report) -> bool:
    """Check an array item as an object of its level; False when it is no object."""
    if item.is_object:
        _check_object(item.node, item.level, item, report)
        return True
    here = item.where
    wanted = f"each item of '{item.field}' must be an object, got {json_type(item.node)}"
    report.error(here, "type", wanted, "object", item.node)
    _check_depth(item.node, here, report)
    return False


def validate(payload: Any, *, now_ms: int | None = None) -> Report:
    """Check one decoded body against the Log Endpoint contract.

    `now_ms` is the receive time used by the "far in the future" warning
    (defaults to the current time). Never raises, whatever `payload` is.
    """
    return check(walk(payload), now_ms=now_ms)


def check(batch: BatchAt, *, now_ms: int | None = None) -> Report:
    """`validate` over a walked batch (the endpoint walks each batch once, for every
    consumer)."""
    report = Report()
    payload = batch.node
    if not batch.is_object:
        report.error(
            "$",
            "object",
            f"the body must be a JSON object, got {json_type(payload)}",
            "object",
            payload,
        )
        return report
    now = int(time.time() * 1000) if now_ms is None else now_ms
    _check_object(payload, "batch", batch, report)
    _check_batch_semantics(payload, report)
    for visitor in batch.visitors:
        if _checked(visitor, report):
            _visit_visitor(visitor, report, now)
    return report


def _check_batch_semantics(batch: dict[str, Any], report: Report) -> None:
    if batch.get("account_id") == "":
        report.error("account_id", "empty", "'account_id' is empty", "a non-empty string", "")
    visitors = batch.get("visitors")
    if isinstance(visitors, list) and not visitors:
        report.error(
            "visitors",
            "empty",
            "'visitors' is empty: there is nothing to record",
            "at least one visitor",
            visitors,
        )
    region = batch.get("region")
    if isinstance(region, str) and region not in REGIONS:
        report.warn("region", "region", f"unknown region {region!r}", "US or EU", region)


def _visit_visitor(visitor: VisitorAt, report: Report, now: int) -> None:
    for attribute in visitor.attributes:
        _checked(attribute, report)
    snapshots = visitor.fields.get("snapshots")
    if isinstance(snapshots, list) and not snapshots:
        report.warn(
            visitor.where_of("snapshots"),
            "nothing_to_record",
            "'snapshots' is empty",
            "at least one snapshot",
            snapshots,
        )
    for snapshot in visitor.snapshots:
        if _checked(snapshot, report):
            _visit_snapshot(snapshot, report, now)


def _visit_snapshot(snapshot: SnapshotAt, report: Report, now: int) -> None:
    campaigns = []
    for decision in snapshot.decisions:
        if not _checked(decision, report):
            continue
        campaigns.append(decision.fields.get("campaign_id"))
        metadata = decision.metadata
        if metadata is not None:
            _check_object(metadata.node, "metadata", metadata, report)
            rule_type = metadata.fields.get("rule_type")
            if isinstance(rule_type, str) and rule_type not in RULE_TYPES:
                report.warn(
                    metadata.where_of("rule_type"),
                    "rule_type",
                    f"unknown rule_type {rule_type!r}",
                    ", ".join(sorted(RULE_TYPES)),
                    rule_type,
                )
    events = snapshot.fields.get("events")
    if isinstance(events, list) and not events:
        report.warn(
            snapshot.where_of("events"),
            "nothing_to_record",
            "'events' is empty",
            "at least one event",
            events,
        )
    for event in snapshot.events:
        if _checked(event, report):
            _visit_event(event, report, now, campaigns)


def _visit_event(event: EventAt, report: Report, now: int, campaigns: list[Any]) -> None:
    fields = event.fields
    _check_timestamp(fields.get("timestamp"), event, report, now)
    for name in ("tags", "properties"):
        _check_map(fields.get(name), name, event, report)
    tags = fields.get("tags")
    if isinstance(tags, dict):
        for name in ("revenue", "value"):
            if name in tags and name not in fields:
                report.warn(
                    event.where_of(name),
                    f"{name}_only_in_tags",
                    f"'{name}' is only in tags: results read the event's own '{name}' field",
                    f"'{name}' on the event",
                    None,
                )
    if event.is_impression:
        _check_impression(event, report, campaigns)


def _check_timestamp(ts: Any, event: EventAt, report: Report, now: int) -> None:
    if not isinstance(ts, int) or isinstance(ts, bool) or not -INT64_MAX - 1 <= ts <= INT64_MAX:
        return  # not an int64: the type or range error says so
    if ts < _SECONDS_CEILING:
        report.warn(
            event.where_of("timestamp"),
            "timestamp_seconds",
            "timestamp looks like seconds or is before 1973: the endpoint wants epoch milliseconds",
            "epoch milliseconds (13 digits)",
            ts,
        )
    elif ts > now + _FUTURE_SLACK_MS:
        report.warn(
            event.where_of("timestamp"),
            "timestamp_future",
            "timestamp is more than a day in the future",
            "at most a day after the request arrived",
            ts,
        )


def _check_map(value: Any, name: str, event: EventAt, report: Report) -> None:
    if not isinstance(value, dict):
        return
    kind = SCHEMA["event"][name].values or "scalar"
    for key, item in value.items():
        if not _matches(kind, item):
            here = join_path(event.where_of(name), key)
            report.error(
                here,
                "type",
                f"values of '{name}' must be {_article(kind)}, got {json_type(item)}",
                kind,
                item,
            )
            _check_depth(item, here, report)


def _check_impression(event: EventAt, report: Report, campaigns: list[Any]) -> None:
    if not campaigns:
        report.warn(
            event.where,
            "impression_without_decision",
            "an impression with no decision in its snapshot counts for no experiment",
            "a decision in the same snapshot",
            None,
        )
        return
    entity = event.fields.get("entity_id")
    if entity not in campaigns and entity not in (None, "") and campaigns[0] not in (None, ""):
        report.warn(
            event.where_of("entity_id"),
            "impression_mismatch",
            f"the impression's entity_id {describe(entity)!r} is not its decision's "
            f"campaign_id {describe(campaigns[0])!r}: the impression counts for no campaign",
            str(campaigns[0]),
            entity,
        )
