"""Flatten a batch into one `EventRecord` per `visitors[].snapshots[].events[]` entry.

It runs on rejected batches too, so it never trusts a type: what is not the
shape the contract wants is skipped (containers) or kept as it came (scalars).
"""

from __future__ import annotations

from typing import Any

from .model import EventRecord
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


def _attributes(visitor: dict[str, Any]) -> dict[str, Any]:
    """The visitor's attributes as key -> value (entity_id when the key is missing)."""
    result: dict[str, Any] = {}
    for _, attribute in _items(visitor, "attributes"):
        name = attribute.get("key") or attribute.get("entity_id")
        if isinstance(name, str):
            result[name] = attribute.get("value")
    return result


def flatten(payload: Any, *, verdict: str, received_at: float = 0.0) -> list[EventRecord]:
    """Every event of the batch, in payload order, with its batch and visitor context."""
    if not isinstance(payload, dict):
        return []
    context: dict[str, Any] = {name: payload.get(name) for name in _BATCH_FIELDS}
    records: list[EventRecord] = []
    for v, visitor in _items(payload, "visitors"):
        attributes = _attributes(visitor)
        for s, snapshot in _items(visitor, "snapshots"):
            decisions = [d for _, d in _items(snapshot, "decisions")]
            for e, event in _items(snapshot, "events"):
                fields: dict[str, Any] = {name: event.get(name) for name in _EVENT_FIELDS}
                records.append(
                    EventRecord(
                        request_id=0,
                        index=len(records),
                        path=f"visitors[{v}].snapshots[{s}].events[{e}]",
                        verdict=verdict,
                        kind="impression" if is_impression(event) else "conversion",
                        visitor_id=visitor.get("visitor_id"),
                        decisions=decisions,
                        attributes=attributes,
                        received_at=received_at,
                        **context,
                        **fields,
                    )
                )
    return records
