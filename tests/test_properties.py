"""Property tests of the validator and the journal, with Hypothesis."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from helpers import impression
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver import CoreRequest, Endpoint, MemoryJournal, SqliteJournal, validate

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
ids = st.text(min_size=1, max_size=30)
scalars = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _nodes(value: Any, path: list[Any]) -> list[list[Any]]:
    """Every path (as keys) inside a JSON value."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nodes(item, [*path, index])
    return found


def _set(payload: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    result = copy.deepcopy(payload)
    node = result
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return result


_SEGMENT = re.compile(r'\.?([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _parse(path: str) -> list[Any]:
    if path == "$":
        return []
    parts, position = [], 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        assert match is not None, f"unparsable path {path!r} at {position}"
        name, index, quoted = match.groups()
        parts.append(name if name is not None else int(index) if index else json.loads(quoted))
        position = match.end()
    return parts


def _exists(payload: Any, parts: list[Any]) -> bool:
    node = payload
    for key in parts:
        in_object = isinstance(node, dict) and isinstance(key, str) and key in node
        in_array = isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        if not (in_object or in_array):
            return False
        node = node[key]
    return True


@SETTINGS
@given(json_values)
def test_the_validator_never_raises_on_any_json(value: Any) -> None:
    report = validate(value)
    assert isinstance(report.ok, bool)


@SETTINGS
@given(st.data())
def test_every_violation_path_points_into_the_payload(data: st.DataObject) -> None:
    base = impression()
    base["visitors"][0]["snapshots"][0]["events"][0]["tags"] = {"a.b": 1, "x[0]": "y"}
    target = data.draw(st.sampled_from(_nodes(base, [])))
    payload = _set(base, target, data.draw(json_values))
    report = validate(payload)
    for violation in [*report.errors, *report.warnings, *report.notes]:
        parts = _parse(violation.path)
        if violation.rule == "required":
            assert _exists(payload, parts[:-1]) and not _exists(payload, parts), violation
        else:
            assert _exists(payload, parts), violation


@st.composite
def valid_batches(draw: st.DrawFn) -> dict[str, Any]:
    batch = impression(draw(ids))
    visitor = batch["visitors"][0]
    visitor["attributes"] = [
        {"type": "custom", "key": key, "entity_id": key, "value": value}
        for key, value in draw(st.dictionaries(ids, scalars, max_size=4)).items()
    ]
    event = visitor["snapshots"][0]["events"][0]
    event["uuid"] = draw(ids)
    event["tags"] = draw(st.dictionaries(st.text(max_size=10), scalars, max_size=4))
    if draw(st.booleans()):
        event["revenue"] = draw(st.integers(-(2**62), 2**62))
        event["value"] = draw(st.floats(allow_nan=False, allow_infinity=False))
    batch["client_name"] = draw(st.text(max_size=20))
    return batch


@SETTINGS
@given(valid_batches(), st.booleans())
def test_a_batch_with_no_error_is_accepted_and_journaled_exactly(
    batch: dict[str, Any], strict: bool
) -> None:
    assert validate(batch).ok
    endpoint = Endpoint(MemoryJournal())
    headers = [("content-type", "application/json")] + ([("x-optimizely-strict", "1")] * strict)
    body = json.dumps(batch, ensure_ascii=False).encode()
    outcome = endpoint.handle(CoreRequest("POST", "/v1/events", body, headers=headers))
    assert outcome.status == 204
    (record,) = endpoint.journal.requests()
    assert record.verdict == "accepted"
    assert record.payload == batch
    with tempfile.TemporaryDirectory() as tmp:
        journal = SqliteJournal(Path(tmp) / "j.db")
        try:
            Endpoint(journal).handle(CoreRequest("POST", "/v1/events", body, headers=headers))
            (stored,) = journal.requests()
            assert (stored.verdict, stored.payload) == ("accepted", batch)
            assert [e.to_dict() for e in stored.events] == [
                {**e.to_dict(), "request_id": stored.id, "received_at": stored.received_at}
                for e in record.events
            ]
        finally:
            journal.close()


# Datafile checks: any datafile the reader accepts, any payload, never an exception.
_few_ids = st.sampled_from(["1", "2", "3", "a", "", "$opt_x"])
_keyed = st.fixed_dictionaries({"id": _few_ids, "key": _few_ids})
_experiments = st.lists(
    st.fixed_dictionaries(
        {
            "id": _few_ids,
            "key": _few_ids,
            "layerId": _few_ids,
            "variations": st.lists(_keyed, max_size=3),
        }
    ),
    max_size=4,
)
datafiles = st.fixed_dictionaries(
    {
        "version": st.just("4"),
        "accountId": _few_ids,
        "projectId": st.sampled_from(["111001", "2"]),
        "revision": _few_ids,
        "anonymizeIP": st.none() | st.booleans(),
        "botFiltering": st.none() | st.booleans(),
        "events": st.lists(_keyed, max_size=3),
        "attributes": st.lists(_keyed, max_size=3),
        "experiments": _experiments,
        "groups": st.lists(st.fixed_dictionaries({"experiments": _experiments}), max_size=2),
        "holdouts": st.lists(
            st.fixed_dictionaries(
                {"id": _few_ids, "key": _few_ids, "variations": st.lists(_keyed, max_size=2)}
            ),
            max_size=2,
        ),
        "rollouts": st.lists(
            st.fixed_dictionaries({"id": _few_ids, "experiments": _experiments}), max_size=2
        ),
        "featureFlags": st.lists(
            st.fixed_dictionaries(
                {
                    "key": _few_ids,
                    "experimentIds": st.lists(_few_ids, max_size=3),
                    "rolloutId": _few_ids | st.none() | st.integers(),
                }
            ),
            max_size=3,
        ),
    }
)


@SETTINGS
@given(st.data())
def test_datafile_checks_never_raise_and_every_path_points_into_the_payload(
    data: st.DataObject,
) -> None:
    from sdk_traffic import SDK_BATCHES, sdk_batch

    from mockserver import DATAFILE_RULES, Datafile, Datafiles, crosscheck

    datafile = Datafile.from_dict(data.draw(datafiles))
    base = sdk_batch(data.draw(st.sampled_from(SDK_BATCHES)))
    for _ in range(data.draw(st.integers(0, 3))):
        target = data.draw(st.sampled_from(_nodes(base, [])))
        base = _set(base, target, data.draw(_few_ids | json_values))
    report = validate(base)
    keys = crosscheck(base, Datafiles((datafile,)), report)
    for violation in report.warnings:
        if violation.rule not in DATAFILE_RULES:
            continue
        parts = _parse(violation.path)
        # What is missing (an absent anonymize_ip, no attributes for $opt_bot_filtering) is
        # flagged where it belongs, in a parent that exists.
        missing = violation.rule in ("anonymize_ip_mismatch", "bot_filtering")
        assert _exists(base, parts) or (missing and _exists(base, parts[:-1])), violation
    for path, key in keys.items():
        assert _exists(base, _parse(path)) and isinstance(key, str), path
