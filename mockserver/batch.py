"""One walk over a batch: where each visitor, attribute, snapshot, decision and event is.

Everything that reads a batch reads it through `walk(payload)`: validation, the datafile
checks, flattening, the fault matcher and the request log. `walk` returns a `BatchAt`,
the root of a tree of typed positions (`VisitorAt`, `AttributeAt`, `SnapshotAt`,
`DecisionAt`, `MetadataAt`, `EventAt`), walked once for every consumer:

    for visitor in walk(payload).visitors:
        for snapshot in visitor.snapshots:
            for event in snapshot.events:
                event.get("key"), event.where   # "visitors[0].snapshots[0].events[0]"

A position holds the item as it came (`node`: any JSON value, since the walk also runs
on batches that break the contract) and where it is: `path` is a structured `Path`
(`("visitors", 0, "snapshots", 0, "events", 0)`), rendered only when a violation or a
stored key needs text (`render`, and `where` for a position). `parse` is the inverse of
`render`, for paths read back from a journal. An array that is not an array yields no
items; an item that is not an object has no fields and no children.

The shape comes from one table, `FIELDS`: for each level of the batch, its fields with
their JSON type, whether they are required, and the level of the items they hold. The
validator checks against it, the walker follows its arrays, the OpenAPI document's batch
schema and the pytest plugin's decision filters are generated from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

__all__ = [
    "FIELDS",
    "IMPRESSION_KEY",
    "AttributeAt",
    "BatchAt",
    "DecisionAt",
    "EventAt",
    "Field",
    "Keys",
    "Level",
    "MetadataAt",
    "Path",
    "Position",
    "SnapshotAt",
    "VisitorAt",
    "is_impression",
    "join",
    "parse",
    "parse_keys",
    "render",
    "render_keys",
    "walk",
]

Level = Literal["batch", "visitor", "attribute", "snapshot", "decision", "metadata", "event"]
Path = tuple[str | int, ...]
"""Where a value is in a batch: object keys and array indexes, from the root."""
Keys = dict[Path, str]
"""The datafile's key for each id it resolved, by the id's path (a decision's own path:
its flag's key)."""
IMPRESSION_KEY = "campaign_activated"
"""The key (or type) the SDKs give an impression event."""


@dataclass(frozen=True)
class Field:
    """One field of one level of the batch.

    `kind` is the JSON type wanted (`scalar`: a string, number or boolean); `required`
    fields that are absent are errors; `id_like` fields warn (not fail) when null or
    empty, because the official SDKs send those for no-decision impressions. `level` is
    the level of what an array or object field holds (`visitors` holds visitors);
    `values` the kind of a free-form map's values (`tags`, `properties`).
    """

    kind: str
    required: bool = False
    id_like: bool = False
    level: Level | None = None
    values: str | None = None


_S, _B, _I, _N, _A, _O = "string", "boolean", "integer", "number", "array", "object"

FIELDS: dict[Level, dict[str, Field]] = {
    "batch": {
        "account_id": Field(_S, required=True),
        "project_id": Field(_S),
        "anonymize_ip": Field(_B),
        "client_name": Field(_S),
        "client_version": Field(_S),
        "visitors": Field(_A, required=True, level="visitor"),
        "revision": Field(_S),
        "enrich_decisions": Field(_B),
        "region": Field(_S),
    },
    "visitor": {
        "visitor_id": Field(_S, required=True, id_like=True),
        "session_id": Field(_S),
        "attributes": Field(_A, level="attribute"),
        "snapshots": Field(_A, required=True, level="snapshot"),
    },
    "attribute": {
        "type": Field(_S, required=True),
        "value": Field("scalar", required=True),
        "entity_id": Field(_S),
        "key": Field(_S),
    },
    "snapshot": {
        "events": Field(_A, required=True, level="event"),
        "decisions": Field(_A, level="decision"),
    },
    "decision": {
        "campaign_id": Field(_S, required=True, id_like=True),
        "experiment_id": Field(_S, required=True, id_like=True),
        "variation_id": Field(_S, required=True, id_like=True),
        "is_campaign_holdback": Field(_B),
        "metadata": Field(_O, level="metadata"),
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
        "tags": Field(_O, values="scalar"),
        "properties": Field(_O, values=_S),
    },
}
"""The batch, level by level, as the Log Endpoint's contract describes it."""

_NO_FIELDS: Mapping[str, Any] = {}
_P = TypeVar("_P", bound="Position")


class Position:
    """One item of a batch: its value (`node`), where it is (`path`) and its index in the
    array that holds it (-1 for the batch and a decision's metadata, which are no array's).
    Its children (a visitor's attributes and snapshots, ...) are walked with it.

    A position knows its path, not its parent: a child pointing back at the parent that
    lists it would make every walk a reference cycle, garbage only the cyclic collector
    frees (about 20 objects per request on the hot path)."""

    __slots__ = ("fields", "index", "is_object", "node", "path")
    level: ClassVar[Level]
    field: ClassVar[str]
    """The parent's field this position is in (`""` for the batch)."""

    def __init__(self, node: Any, path: Path, index: int) -> None:
        self.node = node
        self.path = path
        """Where the item is, from the root."""
        self.index = index
        self.is_object = node.__class__ is dict
        """Whether the item is a JSON object (only objects have fields and children)."""
        self.fields: Mapping[str, Any] = node if self.is_object else _NO_FIELDS
        """The item's fields when it is an object; none when it is not."""

    def get(self, name: str) -> Any:
        """The field `name`, or None when it is absent (or the item is no object)."""
        return self.fields.get(name)

    def at(self, *steps: str | int) -> Path:
        """The path of something inside the item (`event.at("entity_id")`)."""
        return self.path + steps

    @property
    def where(self) -> str:
        """`render(self.path)`, with `""` for the batch itself (a prefix for its fields).
        A position's steps are field names and indexes, so no step needs quoting."""
        text = ""
        for step in self.path:
            if step.__class__ is int:
                text = f"{text}[{step}]"
            else:
                text = f"{text}.{step}" if text else str(step)
        return text

    def where_of(self, name: str) -> str:
        """The rendered path of the field `name` of this item."""
        return join(self.where, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {render(self.path)}>"


class EventAt(Position):
    """An entry of `visitors[].snapshots[].events[]`."""

    __slots__ = ()
    level = "event"
    field = "events"

    @property
    def is_impression(self) -> bool:
        """Impressions are the events the SDKs send as `campaign_activated`."""
        return is_impression(self.fields)


class MetadataAt(Position):
    """A decision's `metadata` object."""

    __slots__ = ()
    level = "metadata"
    field = "metadata"


class DecisionAt(Position):
    """An entry of `visitors[].snapshots[].decisions[]`."""

    __slots__ = ("metadata",)
    level = "decision"
    field = "decisions"
    metadata: MetadataAt | None
    """The decision's metadata, when it is an object."""


class SnapshotAt(Position):
    """An entry of `visitors[].snapshots[]`: decisions, then events."""

    __slots__ = ("decisions", "events")
    level = "snapshot"
    field = "snapshots"
    decisions: list[DecisionAt]
    events: list[EventAt]


class AttributeAt(Position):
    """An entry of `visitors[].attributes[]`."""

    __slots__ = ()
    level = "attribute"
    field = "attributes"


class VisitorAt(Position):
    """An entry of `visitors[]`: attributes, then snapshots."""

    __slots__ = ("attributes", "snapshots")
    level = "visitor"
    field = "visitors"
    attributes: list[AttributeAt]
    snapshots: list[SnapshotAt]


class BatchAt(Position):
    """The whole body (whatever JSON value it is)."""

    __slots__ = ("visitors",)
    level = "batch"
    field = ""
    visitors: list[VisitorAt]

    def events(self) -> Iterator[tuple[VisitorAt, SnapshotAt, EventAt]]:
        """Every event that is an object, with its visitor and snapshot, in batch order."""
        for visitor in self.visitors:
            for snapshot in visitor.snapshots:
                for event in snapshot.events:
                    if event.is_object:
                        yield visitor, snapshot, event


def is_impression(event: Mapping[str, Any]) -> bool:
    """Impressions are the events the SDKs send as `campaign_activated` (key or type)."""
    return event.get("key") == IMPRESSION_KEY or event.get("type") == IMPRESSION_KEY


def walk(payload: Any) -> BatchAt:
    """The positions of `payload`, whatever it is (never raises).

    One function builds the whole tree, level by level as `FIELDS` nests them: it runs
    for every batch, and on Python 3.11 each call and comprehension costs a frame."""
    batch = BatchAt(payload, (), -1)
    batch.visitors = visitors = _items(batch, "visitors", VisitorAt)
    for visitor in visitors:
        visitor.attributes = _items(visitor, "attributes", AttributeAt)
        visitor.snapshots = snapshots = _items(visitor, "snapshots", SnapshotAt)
        for snapshot in snapshots:
            snapshot.decisions = decisions = _items(snapshot, "decisions", DecisionAt)
            for decision in decisions:
                metadata = decision.fields.get("metadata")
                is_object = metadata.__class__ is dict
                decision.metadata = (
                    MetadataAt(metadata, (*decision.path, "metadata"), -1) if is_object else None
                )
            snapshot.events = _items(snapshot, "events", EventAt)
    return batch


def _items(parent: Position, name: str, kind: type[_P]) -> list[_P]:
    """The items of the array `parent[name]` (none when it is no array)."""
    items = parent.fields.get(name)
    if items.__class__ is not list or not items:
        return []
    base = (*parent.path, name)
    found = []
    index = 0
    for item in items:  # no enumerate(): a plain loop is faster here
        found.append(kind(item, (*base, index), index))
        index += 1  # noqa: SIM113
    return found


# Paths as text ------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
_STEP = re.compile(r'\.?([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def join(where: str, key: str) -> str:
    """`where.key`, or `where["odd key"]` when the key is not a plain name, so every path
    can be followed back into the payload (tag keys may hold dots and brackets)."""
    if _PLAIN_KEY.match(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{json.dumps(key)}]"


def render(path: Path) -> str:
    """A path as the JSON path every violation carries: `visitors[0].attributes[1].key`,
    `$` for the root."""
    text = ""
    for step in path:
        text = f"{text}[{step}]" if isinstance(step, int) else join(text, step)
    return text or "$"


def parse(text: str) -> Path:
    """The path `render` gave `text` (ValueError for text it cannot have given)."""
    if text == "$":
        return ()
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None or (match.group(1) is not None and text[position] != "." and steps):
            raise ValueError(f"not a path logx-mock renders: {text!r} (at {position})")
        name, index, quoted = match.groups()
        steps.append(name if name is not None else int(index) if index else json.loads(quoted))
        position = match.end()
    return tuple(steps)


def render_keys(keys: Keys) -> dict[str, str]:
    """Keys by rendered path: the form journals store and the admin API shows."""
    return {render(path): key for path, key in keys.items()}


def parse_keys(keys: Mapping[str, str]) -> Keys:
    """Keys read back from a journal or an import, by structured path again.

    A path `render` cannot have given (an imported file may hold any text) is left out:
    no position of the batch has it, so no event could have read its key anyway."""
    found: Keys = {}
    for text, key in keys.items():
        try:
            found[parse(text)] = key
        except ValueError:
            continue
    return found
