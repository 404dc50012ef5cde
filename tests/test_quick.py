"""The fast path agrees with the full validator: `is_clean` accepts exactly the batches
`validate` reports nothing about (no error, warning or note), on the SDKs' own batches
and on random and mutated ones; so does `clean_body` (the endpoint's: the body's bytes
decoded straight into the typed batch) on those batches as a client sends them, against
the validator's report on the body as it decodes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from helpers import EXAMPLES, example, impression, now_ms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdk_traffic import SDK_BATCHES, sdk_batch

from mockserver import flatten, validate
from mockserver.batch import FIELDS, IMPRESSION_KEY, walk
from mockserver.contract.decoding import DecodeError, decode_body
from mockserver.contract.flatten import flatten_clean
from mockserver.contract.quick import clean_body, clean_cells, is_clean
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
            items[draw(st.integers(0, len(items) - 1))] = copy.deepcopy(draw(values))
        else:
            node[name] = copy.deepcopy(draw(values))  # not shared: it may be mutated next
    return payload


@pytest.mark.parametrize("name", SDK_BATCHES)
def test_the_sdks_clean_batches_take_the_fast_path(name: str) -> None:
    payload = sdk_batch(name)
    assert is_clean(payload, now_ms()) == clean_now(payload)
    assert (clean_body(sent(payload), now_ms()) is not None) == clean_now(payload)


def clean_now(payload: Any) -> bool:
    report = validate(payload)
    return not (report.errors or report.warnings or report.notes)


def test_the_fast_path_is_taken_at_all() -> None:
    # Most of what the SDKs send is clean: the fast path must accept it, or it is no path.
    assert is_clean(impression(), now_ms())
    assert sum(is_clean(p, now_ms()) for p in _BASES) >= len(_BASES) // 2


def sent(payload: Any) -> bytes:
    """`payload` as a client sends it (json.dumps: lone surrogates escaped, `Infinity`
    for an infinite float, which no endpoint decodes)."""
    return json.dumps(payload).encode()


def clean_as_sent(body: bytes) -> bool:
    """What the endpoint's full path says of `body`: it decodes, and the validator
    reports nothing about it."""
    try:
        payload = decode_body(body, None).payload
    except DecodeError:
        return False
    return clean(payload)


def same_events(payload: Any) -> bool:
    """Where the fast path accepts, its events (`flatten_clean`, no walk) are the walk's,
    and so are a compact record's (`CleanEvents`, from `clean_body` of the body as sent,
    its payload not decoded yet): its events' paths and its stored rows, read from the
    cells with two events flagged as duplicates before any record is built, and its
    records once they are built."""
    cells = clean_cells(payload, NOW)
    if cells is not None:
        fast = flatten_clean(payload, verdict="accepted", received_at=1.5)
        if fast != flatten(payload, verdict="accepted", received_at=1.5):
            return False
    body = sent(payload)
    found = clean_body(body, NOW)
    if found is None:
        return True
    compact, anonymize = found
    decoded = decode_body(body, None).payload
    assert anonymize == (decoded.get("anonymize_ip") is not False)
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
        compact=compact,
    )
    record.defer_payload(body)
    walked = flatten(decoded, verdict="accepted", received_at=1.5)
    for event in walked:
        event.request_id = 7
    assert [record.event_path(i) for i in range(len(walked))] == [e.path for e in walked]
    keys = [(e.entity_id, e.uuid, e.timestamp) for e in walked]
    assert record.event_keys() == keys and record.event_keys() is record.event_keys()
    for index in {0, len(walked) - 1}:  # history's flags, kept by index until built
        record.flag_duplicate(index)
        walked[index].duplicate = True
    rows = event_rows(record)
    assert record.event_cells() is compact.cells and not record.payload_is_read
    assert record.compact is not None and record.event_count == len(walked)  # not built yet
    assert compact.visitors == len(decoded["visitors"])
    built = record.events
    return (
        rows == [event_row(event) for event in walked]
        and built == walked
        and record.compact is None
        and record.payload_is_read
        and record.payload == decoded
        and record.event_keys() == keys
        and compact.cells == record.event_cells()
        and (cells is None or cells == compact.cells)
    )


def agree(payload: Any) -> bool:
    """Both fast paths say what the validator says: `is_clean` of the payload, and
    `clean_body` of the payload as sent."""
    body = sent(payload)
    return is_clean(payload, NOW) == clean(payload) and (
        clean_body(body, NOW) is not None
    ) == clean_as_sent(body)


@SETTINGS
@given(mutated())
def test_fast_and_full_agree_on_mutated_sdk_batches(payload: Any) -> None:
    assert agree(payload), (payload, validate(payload, now_ms=NOW))
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
    assert agree(payload)
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
    assert agree(payload)


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


def test_a_lone_surrogate_sent_escaped_takes_the_full_path() -> None:
    # msgspec refuses the escape `\\ud800`: the typed decoder is not sure, json.loads
    # decodes it, and the validator finds nothing to report (the endpoint accepts it).
    payload = at_now(impression())
    payload["visitors"][0]["visitor_id"] = "user-\ud800"
    body = sent(payload)
    assert b"\\ud800" in body
    assert clean_body(body, NOW) is None and clean_as_sent(body)


def test_a_key_sent_twice_counts_once_the_last_way() -> None:
    # The decoded dict keeps the last value: so does the typed batch, where every
    # occurrence must be clean (an earlier bad one only makes it "not sure").
    payload = at_now(impression())
    body = sent(payload).replace(b'"account_id": ', b'"account_id": "first", "account_id": ', 1)
    assert decode_body(body, None).payload["account_id"] == payload["account_id"]
    found = clean_body(body, NOW)
    assert found is not None and found[0].top[0] == payload["account_id"]
    assert same_events(json.loads(body))
    twice_bad = sent(payload).replace(b'"account_id": ', b'"account_id": 5, "account_id": ', 1)
    assert clean_as_sent(twice_bad) and clean_body(twice_bad, NOW) is None
    last_bad = sent(payload).replace(
        b'"account_id": "', b'"account_id": "x", "account_id": 5, "a', 1
    )
    assert not clean_as_sent(last_bad) and clean_body(last_bad, NOW) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  ",
        b"[]",
        b"null",
        b"\xef\xbb\xbf{}",
        b'{"account_id": "1"',
        b"\xff",
        b"NaN",
        b'{"account_id": "\xff"}',  # invalid UTF-8 inside a string
        b'{"account_id": "\xc3"}',
    ],
)
def test_a_body_that_is_no_batch_is_not_clean(body: bytes) -> None:
    assert clean_body(body, NOW) is None


def test_invalid_utf8_in_a_clean_batch_is_malformed() -> None:
    # The typed decoder refuses it with a UnicodeDecodeError: the full path says why.
    body = sent(at_now(impression())).replace(b'"user-1"', b'"user-\xff"')
    assert clean_body(body, NOW) is None
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        decode_body(body, None)
