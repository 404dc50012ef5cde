"""Flatten a batch into one `EventRecord` per `visitors[].snapshots[].events[]` entry.

It runs on rejected batches too, so it never trusts a type: what is not the
shape the contract wants is skipped (containers) or kept as it came (scalars).
"""

from __future__ import annotations

from typing import Any

from ..model import EventRecord, Verdict
from .validation import is_impression

__all__ = ["flatten"]

_EVENT_FIELDS = (
    "key",
    "entity_id",
    "uuid",
    "timestamp",
    "revenue",
    "value",
    "quantity",
    "tags",
    "properties",
)
_BATCH_FIELDS = ("account_id", "project_id", "client_name", "client_version")


def _items(container: Any, name: str) -> list[tuple[int, dict[str, Any]]]:
    items = container.get(name) if isinstance(container, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _attributes(visitor: dict[str, Any], path: str, keys: dict[str, str]) -> dict[str, Any]:
    """The visitor's attributes as key -> value (the datafile's key, then entity_id, when
    the key is missing)."""
    result: dict[str, Any] = {}
    for a, attribute in _items(visitor, "attributes"):
        name = (
            attribute.get("key")
            or keys.get(f"{path}.attributes[{a}].entity_id")
            or attribute.get("entity_id")
        )
        if isinstance(name, str):
            result[name] = attribute.get("value")
    return result


def _decision_keys(keys: dict[str, str], path: str) -> dict[str, str]:
    """What the datafile resolved for the decision at `path`."""
    found = {
        "experiment_key": keys.get(f"{path}.experiment_id"),
        "variation_key": keys.get(f"{path}.variation_id"),
        "flag_key": keys.get(path),
    }
    return {name: key for name, key in found.items() if key is not None}


def flatten(
    payload: Any, *, verdict: Verdict, received_at: float = 0.0, keys: dict[str, str] | None = None
) -> list[EventRecord]:
    """Every event of the batch, in payload order, with its batch and visitor context
    (and the datafile's keys for its ids, when `keys` from a datafile check is given)."""
    if not isinstance(payload, dict):
        return []
    keys = keys or {}
    context: dict[str, Any] = {name: payload.get(name) for name in _BATCH_FIELDS}
    records: list[EventRecord] = []
    for v, visitor in _items(payload, "visitors"):
        vpath = f"visitors[{v}]"
        attributes = _attributes(visitor, vpath, keys)
        for s, snapshot in _items(visitor, "snapshots"):
            spath = f"{vpath}.snapshots[{s}]"
            found = _items(snapshot, "decisions")
            decisions = [d for _, d in found]
            decision_keys = (
                [_decision_keys(keys, f"{spath}.decisions[{d}]") for d, _ in found] if keys else []
            )
            for e, event in _items(snapshot, "events"):
                fields: dict[str, Any] = {name: event.get(name) for name in _EVENT_FIELDS}
                path = f"{spath}.events[{e}]"
                records.append(
                    EventRecord(
                        request_id=0,
                        index=len(records),
                        path=path,
                        verdict=verdict,
                        kind="impression" if is_impression(event) else "conversion",
                        visitor_id=visitor.get("visitor_id"),
                        decisions=decisions,
                        attributes=attributes,
                        received_at=received_at,
                        entity_key=keys.get(f"{path}.entity_id") if keys else None,
                        decision_keys=decision_keys,
                        **context,
                        **fields,
                    )
                )
    return records
