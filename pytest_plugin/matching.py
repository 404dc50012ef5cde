"""Matching journaled events against filters, and explaining near misses.

`difference(event, filters)` is computed once and gives both the verdict (an
empty difference is a match) and the explanation (each differing field with
what was expected and what arrived), so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from mockserver import BATCH_FIELDS, EventRecord

__all__ = ["DECISION_FIELDS", "Mismatch", "describe_event", "difference", "near_misses"]

DECISION_FIELDS = tuple(
    name for name, spec in BATCH_FIELDS["decision"].items() if spec.level is None
)
"""A decision's own fields (`campaign_id`, ...), from the validator's field table."""
METADATA_FIELDS = tuple(BATCH_FIELDS["metadata"])
"""The decision metadata's fields (`flag_key`, `rule_key`, ...), from the same table."""
RESOLVED_FIELDS = ("experiment_key",)
"""Decision filters only a datafile (or the metadata's rule_key) can answer."""
EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(EventRecord))
_SUBSET_FIELDS = ("tags", "attributes", "properties")
FILTERS = (*EVENT_FIELDS, *DECISION_FIELDS, *METADATA_FIELDS, *RESOLVED_FIELDS)


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One field where an event differs from what a filter asked for."""

    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {self.expected!r}, got {self.actual!r}"


def check_filters(filters: dict[str, Any]) -> None:
    """Raise TypeError naming an unknown filter and the closest known one."""
    import difflib

    for name in filters:
        if name not in FILTERS:
            close = difflib.get_close_matches(name, FILTERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown event filter {name!r}{hint}; filters are: {', '.join(FILTERS)}"
            )


def _event_value(event: EventRecord, name: str) -> Any:
    """An event field; `key` is the key as sent, or the datafile's (`EventRecord.named_key`)."""
    return event.named_key if name == "key" else getattr(event, name)


def _subset(expected: Any, actual: Any) -> bool:
    if not isinstance(expected, dict) or not isinstance(actual, dict):
        return bool(expected == actual)
    return all(k in actual and actual[k] == v for k, v in expected.items())


def difference(event: EventRecord, filters: dict[str, Any]) -> list[Mismatch]:
    """Every filter the event does not satisfy (empty: it matches).

    `tags`, `attributes` and `properties` match a subset; decision fields
    (`experiment_id`, `flag_key`, …) match when any decision of the event has them;
    `experiment_key`, `variation_key`, `flag_key` and a conversion's `key` fall back on the
    datafile's keys when the payload carries only ids.
    """
    found: list[Mismatch] = []
    decision_filters = {k: v for k, v in filters.items() if k not in EVENT_FIELDS}
    for name, expected in filters.items():
        if name in decision_filters:
            continue
        actual = _event_value(event, name)
        ok = _subset(expected, actual) if name in _SUBSET_FIELDS else actual == expected
        if not ok:
            found.append(Mismatch(name, expected, actual))
    if decision_filters:
        found.extend(_decision_difference(event, decision_filters))
    return found


def _decision_difference(event: EventRecord, filters: dict[str, Any]) -> list[Mismatch]:
    best: list[Mismatch] | None = None
    for index in range(max(len(event.decisions), 1)):
        misses = []
        for name, expected in filters.items():
            actual = event.decision_value(index, name)
            if actual != expected:
                misses.append(Mismatch(f"decision.{name}", expected, actual))
        if best is None or len(misses) < len(best):
            best = misses
    return best or []


def describe_event(event: EventRecord) -> str:
    """One line a person can read: kind, key, visitor, where it came from."""
    extra = ""
    if event.kind == "impression" and event.decisions:
        decision = event.decisions[0]
        metadata = decision.get("metadata") if isinstance(decision.get("metadata"), dict) else {}
        resolved = event.decision_keys[0] if event.decision_keys else {}
        extra = (
            f" experiment_id={decision.get('experiment_id')!r}{_named(resolved, 'experiment_key')}"
            f" variation_id={decision.get('variation_id')!r}{_named(resolved, 'variation_key')}"
            f" flag_key={(metadata or {}).get('flag_key') or resolved.get('flag_key')!r}"
        )
    if event.kind == "conversion" and event.revenue is not None:
        extra = f" revenue={event.revenue!r}"
    named = event.entity_key
    if event.kind == "conversion" and named is not None and named != event.key:
        extra = f" entity_id={event.entity_id!r} ({event.entity_key}){extra}"
    dup = " duplicate" if event.duplicate else ""
    return (
        f"{event.kind} key={event.key!r} visitor_id={event.visitor_id!r}{extra}"
        f" (request #{event.request_id}, {event.verdict}{dup})"
    )


def _named(resolved: dict[str, str], name: str) -> str:
    return f" ({resolved[name]})" if name in resolved else ""


def near_misses(events: Sequence[EventRecord], filters: dict[str, Any], *, limit: int = 3) -> str:
    """The closest events, each with its field-by-field difference."""
    if not events:
        return "No event arrived at all."
    scored = sorted(events, key=lambda e: len(difference(e, filters)))
    lines = [f"{len(events)} event(s) arrived; the closest:"]
    for event in scored[:limit]:
        lines.append(f"  - {describe_event(event)}")
        lines.extend(f"      {mismatch}" for mismatch in difference(event, filters))
    if len(events) > limit:
        lines.append(f"  ... and {len(events) - limit} more")
    return "\n".join(lines)
