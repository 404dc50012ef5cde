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
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..violations import Report, describe, json_type

__all__ = [
    "ERROR_RULES",
    "INT64_MAX",
    "MAX_DEPTH",
    "SCHEMA",
    "WARNING_RULES",
    "Field",
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


@dataclass(frozen=True)
class Field:
    """One field of one level of the batch.

    `kind` is the JSON type wanted; `required` fields that are absent are
    errors; `id_like` fields warn (not fail) when null or empty, because the
    official SDKs send those for no-decision impressions.
    """

    kind: str
    required: bool = False
    id_like: bool = False


_S, _B, _I, _N, _A, _O = "string", "boolean", "integer", "number", "array", "object"

SCHEMA: dict[str, dict[str, Field]] = {
    "batch": {
        "account_id": Field(_S, required=True),
        "project_id": Field(_S),
        "anonymize_ip": Field(_B),
        "client_name": Field(_S),
        "client_version": Field(_S),
        "visitors": Field(_A, required=True),
        "revision": Field(_S),
        "enrich_decisions": Field(_B),
        "region": Field(_S),
    },
    "visitor": {
        "visitor_id": Field(_S, required=True, id_like=True),
        "session_id": Field(_S),
        "attributes": Field(_A),
        "snapshots": Field(_A, required=True),
    },
    "attribute": {
        "type": Field(_S, required=True),
        "value": Field("scalar", required=True),
        "entity_id": Field(_S),
        "key": Field(_S),
    },
    "snapshot": {
        "events": Field(_A, required=True),
        "decisions": Field(_A),
    },
    "decision": {
        "campaign_id": Field(_S, required=True, id_like=True),
        "experiment_id": Field(_S, required=True, id_like=True),
        "variation_id": Field(_S, required=True, id_like=True),
        "is_campaign_holdback": Field(_B),
        "metadata": Field(_O),
    },
    "metadata": {
        "flag_key": Field(_S),
        "rule_key": Field(_S),
        "rule_type": Field(_S),
        "variation_key": Field(_S),
        "enabled": Field(_B),
        "cmab_uuid": Field(_S),
    },
    "event": {
        "timestamp": Field(_I, required=True),
        "uuid": Field(_S, required=True),
        "entity_id": Field(_S, id_like=True),
        "key": Field(_S),
        "type": Field(_S),
        "revenue": Field(_I),
        "value": Field(_N),
        "quantity": Field(_I),
        "tags": Field(_O),
        "properties": Field(_O),
    },
}

_INT64_FIELDS = {"timestamp", "revenue", "quantity"}


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
            name in _INT64_FIELDS,
        )
        for name, spec in fields.items()
    )
    return checks, frozenset(fields)


_LEVELS = {level: _compile(fields) for level, fields in SCHEMA.items()}


def _check_object(obj: dict[str, Any], level: str, path: str, report: Report) -> None:
    """Required fields, types and unknown fields of one object of the batch.

    This runs for every object of every batch, so the per-field work is precompiled
    (`_LEVELS`) and paths are only built for fields that have something to report.
    """
    checks, names = _LEVELS[level]
    for name, spec, types, bool_ok, wide in checks:
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            if spec.required:
                here = join_path(path, name)
                report.error(here, "required", f"'{name}' is required", spec.kind, None)
            continue
        if spec.id_like and (value is None or value == ""):
            state = "null" if value is None else "empty"
            report.warn(
                join_path(path, name),
                "empty_id",
                f"'{name}' is {state}: Optimizely cannot attribute this to anything",
                "a non-empty string",
                value,
            )
            continue
        if bool_ok if value.__class__ is bool else isinstance(value, types):
            if wide and not -INT64_MAX - 1 <= value <= INT64_MAX:
                here = join_path(path, name)
                report.error(here, "range", f"'{name}' does not fit in 64 bits", "int64", value)
            continue
        here = join_path(path, name)
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
            here = join_path(path, name)
            report.note(here, "unknown_field", _unknown(name, fields))
            _check_depth(obj[name], here, report)


_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def join_path(path: str, key: str) -> str:
    """`path.key`, or `path["odd key"]` when the key is not a plain name, so every path
    can be followed back into the payload (tag keys may hold dots and brackets)."""
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


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


def _each(
    parent: dict[str, Any],
    name: str,
    path: str,
    level: str,
    report: Report,
    visit: Callable[[dict[str, Any], str], None] | None = None,
) -> None:
    """Check every item of the array `parent[name]` as an object of `level`."""
    items = parent.get(name)
    if not isinstance(items, list):
        return
    base = f"{path}.{name}" if path else name
    for i, item in enumerate(items):
        here = f"{base}[{i}]"
        if not isinstance(item, dict):
            wanted = f"each item of '{name}' must be an object, got {json_type(item)}"
            report.error(here, "type", wanted, "object", item)
            _check_depth(item, here, report)
            continue
        _check_object(item, level, here, report)
        if visit is not None:
            visit(item, here)


def validate(payload: Any, *, now_ms: int | None = None) -> Report:
    """Check one decoded body against the Log Endpoint contract.

    `now_ms` is the receive time used by the "far in the future" warning
    (defaults to the current time). Never raises, whatever `payload` is.
    """
    report = Report()
    if not isinstance(payload, dict):
        report.error(
            "$",
            "object",
            f"the body must be a JSON object, got {json_type(payload)}",
            "object",
            payload,
        )
        return report
    now = int(time.time() * 1000) if now_ms is None else now_ms
    _check_object(payload, "batch", "", report)
    _check_batch_semantics(payload, report)
    _each(
        payload, "visitors", "", "visitor", report, lambda v, p: _visit_visitor(v, p, report, now)
    )
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


def _visit_visitor(visitor: dict[str, Any], path: str, report: Report, now: int) -> None:
    _each(visitor, "attributes", path, "attribute", report)
    snapshots = visitor.get("snapshots")
    if isinstance(snapshots, list) and not snapshots:
        report.warn(
            f"{path}.snapshots",
            "nothing_to_record",
            "'snapshots' is empty",
            "at least one snapshot",
            snapshots,
        )
    _each(
        visitor,
        "snapshots",
        path,
        "snapshot",
        report,
        lambda s, p: _visit_snapshot(s, p, report, now),
    )


def _visit_snapshot(snapshot: dict[str, Any], path: str, report: Report, now: int) -> None:
    def visit_decision(decision: dict[str, Any], here: str) -> None:
        metadata = decision.get("metadata")
        if isinstance(metadata, dict):
            _check_object(metadata, "metadata", f"{here}.metadata", report)
            rule_type = metadata.get("rule_type")
            if isinstance(rule_type, str) and rule_type not in RULE_TYPES:
                report.warn(
                    f"{here}.metadata.rule_type",
                    "rule_type",
                    f"unknown rule_type {rule_type!r}",
                    ", ".join(sorted(RULE_TYPES)),
                    rule_type,
                )

    _each(snapshot, "decisions", path, "decision", report, visit_decision)
    events = snapshot.get("events")
    if isinstance(events, list) and not events:
        report.warn(
            f"{path}.events", "nothing_to_record", "'events' is empty", "at least one event", events
        )
    decisions = snapshot.get("decisions")
    campaigns = (
        [d.get("campaign_id") for d in decisions or [] if isinstance(d, dict)]
        if isinstance(decisions, list)
        else []
    )
    _each(
        snapshot,
        "events",
        path,
        "event",
        report,
        lambda e, p: _visit_event(e, p, report, now, campaigns),
    )


def is_impression(event: dict[str, Any]) -> bool:
    """Impressions are the events the SDKs send as `campaign_activated`."""
    return event.get("key") == "campaign_activated" or event.get("type") == "campaign_activated"


def _visit_event(
    event: dict[str, Any], path: str, report: Report, now: int, campaigns: list[Any]
) -> None:
    _check_timestamp(event.get("timestamp"), f"{path}.timestamp", report, now)
    for name in ("tags", "properties"):
        _check_map(event.get(name), name, f"{path}.{name}", report)
    tags = event.get("tags")
    if isinstance(tags, dict):
        for name in ("revenue", "value"):
            if name in tags and name not in event:
                report.warn(
                    f"{path}.{name}",
                    f"{name}_only_in_tags",
                    f"'{name}' is only in tags: results read the event's own '{name}' field",
                    f"'{name}' on the event",
                    None,
                )
    if is_impression(event):
        _check_impression(event, path, report, campaigns)


def _check_timestamp(ts: Any, path: str, report: Report, now: int) -> None:
    if not isinstance(ts, int) or isinstance(ts, bool) or abs(ts) > INT64_MAX:
        return
    if ts < _SECONDS_CEILING:
        report.warn(
            path,
            "timestamp_seconds",
            "timestamp looks like seconds or is before 1973: the endpoint wants epoch milliseconds",
            "epoch milliseconds (13 digits)",
            ts,
        )
    elif ts > now + _FUTURE_SLACK_MS:
        report.warn(
            path,
            "timestamp_future",
            "timestamp is more than a day in the future",
            "at most a day after the request arrived",
            ts,
        )


def _check_map(value: Any, name: str, path: str, report: Report) -> None:
    if not isinstance(value, dict):
        return
    kind = "string" if name == "properties" else "scalar"
    for key, item in value.items():
        if not _matches(kind, item):
            report.error(
                join_path(path, key),
                "type",
                f"values of '{name}' must be {_article(kind)}, got {json_type(item)}",
                kind,
                item,
            )
            _check_depth(item, join_path(path, key), report)


def _check_impression(
    event: dict[str, Any], path: str, report: Report, campaigns: list[Any]
) -> None:
    if not campaigns:
        report.warn(
            path,
            "impression_without_decision",
            "an impression with no decision in its snapshot counts for no experiment",
            "a decision in the same snapshot",
            None,
        )
        return
    entity = event.get("entity_id")
    if entity not in campaigns and entity not in (None, "") and campaigns[0] not in (None, ""):
        report.warn(
            f"{path}.entity_id",
            "impression_mismatch",
            f"the impression's entity_id {describe(entity)!r} is not its decision's "
            f"campaign_id {describe(campaigns[0])!r}: the impression counts for no campaign",
            str(campaigns[0]),
            entity,
        )
