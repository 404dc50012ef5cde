"""The one walker over a batch: positions, structured paths, and the field table it shares
with the validator, the OpenAPI document and the plugin's filters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import EXAMPLES, example, impression
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sdk_traffic import SDK_BATCHES, sdk_batch

from mockserver import Datafile, Datafiles, Report, crosscheck, validate
from mockserver.batch import (
    FIELDS,
    BatchAt,
    Path,
    Position,
    join,
    parse,
    parse_keys,
    render,
    render_keys,
    walk,
)
from mockserver.contract.crosscheck import resolve
from mockserver.web.admin.routes import openapi_document

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
paths = st.lists(st.integers(0, 10**6) | st.text(max_size=12), max_size=8).map(tuple)


def positions(batch: BatchAt) -> list[Position]:
    """Every position of a walked batch, in walk order."""
    found: list[Position] = [batch]
    for visitor in batch.visitors:
        found.append(visitor)
        found.extend(visitor.attributes)
        for snapshot in visitor.snapshots:
            found.append(snapshot)
            for decision in snapshot.decisions:
                found.append(decision)
                if decision.metadata is not None:
                    found.append(decision.metadata)
            found.extend(snapshot.events)
    return found


def follow(payload: Any, path: Path) -> Any:
    node = payload
    for step in path:
        node = node[step]
    return node


def test_paths_render_as_the_json_paths_violations_carry() -> None:
    assert render(()) == "$"
    assert render(("visitors", 0, "attributes", 1, "entity_id")) == (
        "visitors[0].attributes[1].entity_id"
    )
    assert render(("visitors", 0, "snapshots", 0, "events", 2, "tags", "a.b")) == (
        'visitors[0].snapshots[0].events[2].tags["a.b"]'
    )
    assert render(("odd key",)) == '["odd key"]'
    assert render(("0",)) == '["0"]'  # a key made of digits is not an index
    assert join("", "account_id") == "account_id"


@SETTINGS
@given(paths)
def test_parse_reads_back_every_path_render_gives(path: Path) -> None:
    assert parse(render(path)) == path


@pytest.mark.parametrize("text", ["visitors[0]x", "a..b", "[x]", "a[0", '["unterminated]'])
def test_parse_refuses_text_render_never_gives(text: str) -> None:
    with pytest.raises(ValueError, match="not a path logx-mock renders"):
        parse(text)


@pytest.mark.parametrize("name", SDK_BATCHES)
def test_every_position_knows_where_it_is(name: str) -> None:
    payload = sdk_batch(name)
    found = positions(walk(payload))
    levels = {p.level for p in found}
    assert {"batch", "visitor", "attribute", "snapshot", "event"} <= levels
    for position in found:
        assert follow(payload, position.path) is position.node
        assert position.where == (render(position.path) if position.path else "")
        assert position.at("x") == (*position.path, "x")


_PLACES = [(), ("visitors",), ("visitors", 0), ("visitors", 0, "snapshots")]


@SETTINGS
@given(json_values, st.sampled_from(_PLACES))
def test_the_walk_never_raises_and_only_objects_have_children(value: Any, place: Path) -> None:
    payload: Any = impression()
    if place:
        follow(payload, place[:-1])[place[-1]] = value
    else:
        payload = value
    for position in positions(walk(payload)):
        assert follow(payload, position.path) is position.node
        if not isinstance(position.node, dict):
            assert not position.is_object and position.get("visitors") is None
            assert getattr(position, "snapshots", []) == []


def test_the_walk_follows_the_field_tables_arrays() -> None:
    batch = walk(impression())
    (visitor,) = batch.visitors
    (snapshot,) = visitor.snapshots
    (decision,) = snapshot.decisions
    assert decision.metadata is not None
    children = {
        ("batch", "visitors"): visitor,
        ("visitor", "attributes"): visitor.attributes[0],
        ("visitor", "snapshots"): snapshot,
        ("snapshot", "decisions"): decision,
        ("snapshot", "events"): snapshot.events[0],
        ("decision", "metadata"): decision.metadata,
    }
    table = {
        (level, name): spec.level
        for level, fields in FIELDS.items()
        for name, spec in fields.items()
        if spec.level is not None
    }
    assert set(table) == set(children)
    for (parent, name), child in children.items():
        assert child.field == name and child.path[-1 if child.index < 0 else -2] == name
        assert child.level == table[(parent, name)]


def test_a_position_that_is_not_an_object_has_no_fields() -> None:
    payload = {"visitors": ["oops", {"snapshots": {"not": "a list"}}]}
    first, second = walk(payload).visitors
    assert (first.is_object, first.get("visitor_id"), first.snapshots) == (False, None, [])
    assert (second.is_object, second.snapshots, second.where) == (True, [], "visitors[1]")
    assert repr(second) == "<VisitorAt visitors[1]>"


def test_events_come_with_their_visitor_and_snapshot_in_batch_order() -> None:
    payload = example("node-sdk-batch-two-visitors.json")
    found = [(v.index, s.index, e.index) for v, s, e in walk(payload).events()]
    expected = [
        (v, s, e)
        for v, visitor in enumerate(payload["visitors"])
        for s, snapshot in enumerate(visitor["snapshots"])
        for e, _ in enumerate(snapshot["events"])
    ]
    assert found == expected and len(found) >= 2


def test_datafile_keys_are_keyed_by_structured_paths() -> None:
    from helpers import DATAFILE

    datafiles = Datafiles((Datafile.load(DATAFILE),))
    payload = sdk_batch("activate")
    keys = resolve(walk(payload), datafiles, Report())
    assert keys and all(isinstance(path, tuple) for path in keys)
    for path, key in keys.items():
        step = follow(payload, path)
        assert isinstance(step, dict | str) and isinstance(key, str)
    # The public form (journal, admin API, page) is the rendered one, and reads back whole.
    rendered = crosscheck(payload, datafiles, Report())
    assert rendered == render_keys(keys)
    assert parse_keys(rendered) == keys


# The OpenAPI batch schema is generated from the validator's table: what the validator
# accepts, the schema accepts.


def _batch_validator() -> Draft202012Validator:
    document = openapi_document()
    schema = {"$ref": "#/components/schemas/Batch", "components": document["components"]}
    return Draft202012Validator(schema)


def test_the_openapi_batch_schema_is_the_field_table() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for level, fields in FIELDS.items():
        schema = schemas[level.capitalize()]
        assert list(schema["properties"]) == list(fields)
        assert schema.get("required", []) == [n for n, f in fields.items() if f.required]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_sdk_example_fits_the_generated_schema(name: str) -> None:
    assert validate(example(name)).ok
    errors = list(_batch_validator().iter_errors(example(name)))
    assert errors == []


@SETTINGS
@given(st.data())
def test_a_batch_the_validator_finds_no_error_in_fits_the_schema_and_back(
    data: st.DataObject,
) -> None:
    base = sdk_batch(data.draw(st.sampled_from(SDK_BATCHES)))
    nodes = [p for p in positions(walk(base)) if p.is_object]
    target = data.draw(st.sampled_from(nodes))
    name = data.draw(st.sampled_from(sorted({*FIELDS[target.level], "extra"})))
    value = data.draw(json_values)
    # JSON Schema counts 2.0 as an integer; the contract (and the SDKs) do not.
    assume(not (isinstance(value, float) and value.is_integer()))
    target.node[name] = value
    report = validate(base)
    fits = _batch_validator().is_valid(json.loads(json.dumps(base)))
    if report.ok:  # unknown fields are notes: the schema allows more properties too
        assert fits, report
    elif not any(v.rule in ("empty", "depth", "range") for v in report.errors):
        assert not fits, report.errors  # an empty string/array and int64 are the table's


def test_keys_read_back_leave_out_paths_no_position_has() -> None:
    # An import may carry any text as a key's path: it resolves nothing, and refuses nothing.
    rendered = {"visitors[0].attributes[1].entity_id": "plan", "\x17\x96": "x", "a..b": "y"}
    assert parse_keys(rendered) == {("visitors", 0, "attributes", 1, "entity_id"): "plan"}
