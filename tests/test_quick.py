"""The fast path agrees with the full validator: `is_clean` accepts exactly the batches
`validate` reports nothing about (no error, warning or note), on the SDKs' own batches
and on random and mutated ones."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from helpers import EXAMPLES, example, impression, now_ms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdk_traffic import SDK_BATCHES, sdk_batch

from mockserver import flatten, validate
from mockserver.batch import FIELDS, IMPRESSION_KEY, walk
from mockserver.contract.flatten import CleanEvents, flatten_clean
from mockserver.contract.quick import clean_cells, is_clean
from mockserver.contract.validation import INT64_MAX, REGIONS, RULE_TYPES
from mockserver.journal.rows import event_row, event_rows
from mockserver.model import RequestRecord

SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_790_000_000_000
"""The receive time every check here uses (late 2026, in epoch milliseconds)."""

# Values near every line the validator draws: types, empties, enums, int64 and the
# timestamp's seconds/future bounds, impression keys.
_EDGES = st.sampled_from(
    [
        "",
        "x",
        IMPRESSION_KEY,
        "111182",
        *sorted(REGIONS),
        "us",
        *sorted(RULE_TYPES),
        "Rollout",
        0,
        -1,
        1,
        2.5,
        2.0,
        True,
        False,
        None,
        [],
        {},
        INT64_MAX,
        INT64_MAX + 1,
        -INT64_MAX - 1,
        -INT64_MAX - 2,
        10**30,
        10**400,
        -(10**400),
        1e300,
        99_999_999_999,
        100_000_000_000,
        NOW,
        NOW + 24 * 3600 * 1000,
        NOW + 24 * 3600 * 1000 + 1,
        {"revenue": 1},
        {"value": 1.5},
        {"a": [1]},
        ["x"],
        [{}],
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
values = (_EDGES | json_values).map(copy.deepcopy)
"""A fresh copy each draw: a mutation must never change the shared edge values."""


def clean(payload: Any) -> bool:
    report = validate(payload, now_ms=NOW)
    return not (report.errors or report.warnings or report.notes)


def bases() -> list[dict[str, Any]]:
    return [sdk_batch(name) for name in SDK_BATCHES] + [example(name) for name in EXAMPLES]


_BASES = bases()


def _objects(payload: Any) -> list[tuple[Any, str]]:
    """Every object of the batch's shape, with its level."""
    batch = walk(payload)
    found: list[Any] = [batch]
    for visitor in batch.visitors:
        found += [visitor, *visitor.attributes]
        for snapshot in visitor.snapshots:
            found += [snapshot, *snapshot.decisions, *snapshot.events]
            found += [d.metadata for d in snapshot.decisions if d.metadata is not None]
    return [(p.node, p.level) for p in found if p.is_object]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """An SDK batch with one to three changes: a field set (known, or not), a field
    deleted, or an array item replaced."""
    payload = copy.deepcopy(draw(st.sampled_from(_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        node, level = draw(st.sampled_from(_objects(payload)))
        names = sorted({*FIELDS[level], "extra"})  # type: ignore[index]
        name = draw(st.sampled_from(names))
        action = draw(st.sampled_from(["set", "delete", "replace"]))
        if action == "delete":
            node.pop(name, None)
        elif action == "replace" and isinstance(node.get(name), list) and node[name]:
            items = node[name]
            items[draw(st.integers(0, len(items) - 1))] = draw(values)
        else:
            node[name] = draw(values)
    return payload


@pytest.mark.parametrize("name", SDK_BATCHES)
def test_the_sdks_clean_batches_take_the_fast_path(name: str) -> None:
    payload = sdk_batch(name)
    assert is_clean(payload, now_ms()) == clean_now(payload)


def clean_now(payload: Any) -> bool:
    report = validate(payload)
    return not (report.errors or report.warnings or report.notes)


def test_the_fast_path_is_taken_at_all() -> None:
    # Most of what the SDKs send is clean: the fast path must accept it, or it is no path.
    assert is_clean(impression(), now_ms())
    assert sum(is_clean(p, now_ms()) for p in _BASES) >= len(_BASES) // 2


def same_events(payload: Any) -> bool:
    """Where the fast path accepts, its events (`flatten_clean`, no walk) are the walk's,
    and so are a compact record's (`CleanEvents`): its stored rows, read from the cells
    before any record is built, and its records once they are built."""
    cells = clean_cells(payload, NOW)
    if cells is None:
        return True
    fast = flatten_clean(payload, verdict="accepted", received_at=1.5)
    if fast != flatten(payload, verdict="accepted", received_at=1.5):
        return False
    record = RequestRecord(
        id=7,
        received_at=1.5,
        method="POST",
        path="/v1/events",
        host=None,
        headers=[],
        client_ip=None,
        strict=True,
        strict_header=None,
        status=204,
        verdict="accepted",
        payload=payload,
        compact=CleanEvents(cells),
    )
    walked = flatten(payload, verdict="accepted", received_at=1.5)
    for event in walked:
        event.request_id = 7
    rows = event_rows(record)
    assert record.event_cells() is cells
    assert record.compact is not None and record.event_count == len(walked)  # not built yet
    built = record.events
    return (
        rows == [event_row(event) for event in walked]
        and built == walked
        and record.compact is None
        and cells == record.event_cells()
    )


@SETTINGS
@given(mutated())
def test_fast_and_full_agree_on_mutated_sdk_batches(payload: Any) -> None:
    assert is_clean(payload, NOW) == clean(payload), (payload, validate(payload, now_ms=NOW))
    assert same_events(payload), payload


def at_now(payload: Any) -> Any:
    """`payload` with every timestamp in the window `NOW` accepts."""
    payload = copy.deepcopy(payload)
    for visitor in payload["visitors"]:
        for snapshot in visitor["snapshots"]:
            for event in snapshot["events"]:
                event["timestamp"] = NOW
    return payload


_CLEAN_BASES = [p for p in map(at_now, _BASES) if is_clean(p, NOW)]


def test_most_sdk_batches_are_clean_at_now() -> None:
    assert len(_CLEAN_BASES) >= len(_BASES) // 2


@pytest.mark.parametrize("payload", _CLEAN_BASES)
def test_the_fast_events_are_the_walks_events(payload: Any) -> None:
    events = flatten_clean(payload, verdict="accepted")
    assert events and events == flatten(payload, verdict="accepted")
    tripled = {**payload, "visitors": payload["visitors"] * 3}
    assert same_events(tripled) and len(flatten_clean(tripled, verdict="accepted")) == 3 * len(
        events
    )


@SETTINGS
@given(values)
def test_fast_and_full_agree_on_random_json(payload: Any) -> None:
    assert is_clean(payload, NOW) == clean(payload)
    assert same_events(payload)


@SETTINGS
@given(st.integers() | st.sampled_from([10**400, -(10**400), 2**64]), st.data())
def test_fast_and_full_agree_on_every_integer(number: int, data: st.DataObject) -> None:
    payload = impression()
    event = payload["visitors"][0]["snapshots"][0]["events"][0]
    event["timestamp"] = NOW
    place = data.draw(
        st.sampled_from(["timestamp", "revenue", "quantity", "value", "tag", "attribute"])
    )
    if place == "tag":
        event["tags"] = {"n": number}
    elif place == "attribute":
        payload["visitors"][0]["attributes"][0]["value"] = number
    else:
        event[place] = number
    assert is_clean(payload, NOW) == clean(payload)


@pytest.mark.parametrize("field", ["visitor_id", "timestamp"])
def test_lone_surrogates_are_judged_alike(field: str) -> None:
    # msgspec cannot encode them into its own error message: that is "not clean" too.
    payload = impression()
    event = payload["visitors"][0]["snapshots"][0]["events"][0]
    event["timestamp"] = NOW
    if field == "visitor_id":
        payload["visitors"][0]["visitor_id"] = "user-\ud800"
    else:
        event["timestamp"] = "a\ud800"
    assert is_clean(payload, NOW) == clean(payload) == (field == "visitor_id")
