"""The validator: every error rule, every warning rule, unknown fields, SDK shapes."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import DELETE, EXAMPLES, conversion, example, impression, mutate

from mockserver import validate
from mockserver.contract.validation import SCHEMA

IMP = impression()
CONV = conversion()
E = "visitors.0.snapshots.0.events.0"
D = "visitors.0.snapshots.0.decisions.0"
A = "visitors.0.attributes.0"


def _paths(violations: list[Any]) -> list[tuple[str, str]]:
    return [(v.path, v.rule) for v in violations]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_sdk_example_is_valid(name: str) -> None:
    report = validate(example(name))
    assert report.errors == []
    assert report.ok


def test_python_sdk_example_has_no_warning_or_note() -> None:
    report = validate(example("python-sdk-decide-impression.json"))
    assert (report.warnings, report.notes) == ([], [])


ERRORS = [
    # (base, dotted path to change, new value, expected JSON path, rule)
    (IMP, "account_id", DELETE, "account_id", "required"),
    (IMP, "account_id", 12001, "account_id", "type"),
    (IMP, "account_id", "", "account_id", "empty"),
    (IMP, "visitors", DELETE, "visitors", "required"),
    (IMP, "visitors", {"a": 1}, "visitors", "type"),
    (IMP, "visitors", [], "visitors", "empty"),
    (IMP, "anonymize_ip", "yes", "anonymize_ip", "type"),
    (IMP, "project_id", 111001, "project_id", "type"),
    (IMP, "client_name", None, "client_name", "type"),
    (IMP, "enrich_decisions", 1, "enrich_decisions", "type"),
    (IMP, "visitors.0", "user-1", "visitors[0]", "type"),
    (IMP, "visitors.0.visitor_id", DELETE, "visitors[0].visitor_id", "required"),
    (IMP, "visitors.0.visitor_id", 42, "visitors[0].visitor_id", "type"),
    (IMP, "visitors.0.snapshots", DELETE, "visitors[0].snapshots", "required"),
    (IMP, "visitors.0.snapshots", "x", "visitors[0].snapshots", "type"),
    (IMP, "visitors.0.attributes", {}, "visitors[0].attributes", "type"),
    (IMP, f"{A}.type", DELETE, "visitors[0].attributes[0].type", "required"),
    (IMP, f"{A}.value", DELETE, "visitors[0].attributes[0].value", "required"),
    (IMP, f"{A}.value", {"x": 1}, "visitors[0].attributes[0].value", "type"),
    (IMP, f"{A}.value", [1], "visitors[0].attributes[0].value", "type"),
    (IMP, f"{A}.value", None, "visitors[0].attributes[0].value", "type"),
    (IMP, "visitors.0.snapshots.0.events", DELETE, "visitors[0].snapshots[0].events", "required"),
    (IMP, "visitors.0.snapshots.0.decisions", {}, "visitors[0].snapshots[0].decisions", "type"),
    (
        IMP,
        f"{D}.campaign_id",
        DELETE,
        "visitors[0].snapshots[0].decisions[0].campaign_id",
        "required",
    ),
    (
        IMP,
        f"{D}.experiment_id",
        111127,
        "visitors[0].snapshots[0].decisions[0].experiment_id",
        "type",
    ),
    (
        IMP,
        f"{D}.variation_id",
        DELETE,
        "visitors[0].snapshots[0].decisions[0].variation_id",
        "required",
    ),
    (
        IMP,
        f"{D}.is_campaign_holdback",
        "false",
        "visitors[0].snapshots[0].decisions[0].is_campaign_holdback",
        "type",
    ),
    (IMP, f"{D}.metadata", "m", "visitors[0].snapshots[0].decisions[0].metadata", "type"),
    (
        IMP,
        f"{D}.metadata.enabled",
        "true",
        "visitors[0].snapshots[0].decisions[0].metadata.enabled",
        "type",
    ),
    (IMP, f"{E}.timestamp", DELETE, "visitors[0].snapshots[0].events[0].timestamp", "required"),
    (
        IMP,
        f"{E}.timestamp",
        "1767225600123",
        "visitors[0].snapshots[0].events[0].timestamp",
        "type",
    ),
    (
        IMP,
        f"{E}.timestamp",
        1767225600123.0,
        "visitors[0].snapshots[0].events[0].timestamp",
        "type",
    ),
    (IMP, f"{E}.timestamp", True, "visitors[0].snapshots[0].events[0].timestamp", "type"),
    (IMP, f"{E}.timestamp", 10**30, "visitors[0].snapshots[0].events[0].timestamp", "range"),
    (IMP, f"{E}.uuid", DELETE, "visitors[0].snapshots[0].events[0].uuid", "required"),
    (IMP, f"{E}.uuid", 7, "visitors[0].snapshots[0].events[0].uuid", "type"),
    (CONV, f"{E}.revenue", 42.5, "visitors[0].snapshots[0].events[0].revenue", "type"),
    (CONV, f"{E}.revenue", "4200", "visitors[0].snapshots[0].events[0].revenue", "type"),
    (CONV, f"{E}.value", "3.5", "visitors[0].snapshots[0].events[0].value", "type"),
    (CONV, f"{E}.quantity", 1.5, "visitors[0].snapshots[0].events[0].quantity", "type"),
    (CONV, f"{E}.tags", ["a"], "visitors[0].snapshots[0].events[0].tags", "type"),
    (
        CONV,
        f"{E}.tags",
        {"nested": {"a": 1}},
        "visitors[0].snapshots[0].events[0].tags.nested",
        "type",
    ),
    (CONV, f"{E}.properties", {"n": 5}, "visitors[0].snapshots[0].events[0].properties.n", "type"),
    (CONV, "visitors.0.snapshots.0.events.0", 5, "visitors[0].snapshots[0].events[0]", "type"),
]


@pytest.mark.parametrize(("base", "change", "value", "path", "rule"), ERRORS)
def test_each_error_rule_names_its_path(
    base: dict[str, Any], change: str, value: Any, path: str, rule: str
) -> None:
    report = validate(mutate(base, change, value))
    assert (path, rule) in _paths(report.errors)
    assert not report.ok


def test_every_violation_is_listed_not_only_the_first() -> None:
    batch = mutate(mutate(mutate(IMP, "account_id", 5), f"{E}.timestamp", "x"), f"{E}.uuid", 1)
    assert _paths(validate(batch).errors) == [
        ("account_id", "type"),
        ("visitors[0].snapshots[0].events[0].timestamp", "type"),
        ("visitors[0].snapshots[0].events[0].uuid", "type"),
    ]


def test_violation_carries_expected_and_actual() -> None:
    (violation,) = validate(mutate(IMP, f"{E}.timestamp", "soon")).errors
    assert violation.expected == "integer"
    assert violation.actual == "soon"
    assert "must be an integer, got string" in violation.message


@pytest.mark.parametrize("body", [[], "text", 3, None, True, [IMP]])
def test_a_body_that_is_not_an_object_is_one_error_at_the_root(body: Any) -> None:
    (violation,) = validate(body).errors
    assert (violation.path, violation.rule) == ("$", "object")


WARNINGS = [
    (IMP, f"{E}.timestamp", 1767225600, f"{E}.timestamp", "timestamp_seconds"),
    # The smallest int64 fits in 64 bits: it is before 1973, not out of range.
    (IMP, f"{E}.timestamp", -(2**63), f"{E}.timestamp", "timestamp_seconds"),
    (IMP, f"{E}.timestamp", 4_102_444_800_000, f"{E}.timestamp", "timestamp_future"),
    (IMP, f"{E}.entity_id", "999", f"{E}.entity_id", "impression_mismatch"),
    (IMP, "visitors.0.snapshots.0.decisions", [], E, "impression_without_decision"),
    (CONV, f"{E}.tags", {"revenue": 100}, f"{E}.revenue", "revenue_only_in_tags"),
    (CONV, f"{E}.tags", {"value": 1.5}, f"{E}.value", "value_only_in_tags"),
    (IMP, f"{D}.variation_id", None, f"{D}.variation_id", "empty_id"),
    (IMP, f"{D}.campaign_id", "", f"{D}.campaign_id", "empty_id"),
    (IMP, f"{D}.campaign_id", None, f"{D}.campaign_id", "empty_id"),
    (IMP, f"{D}.experiment_id", "", f"{D}.experiment_id", "empty_id"),
    (CONV, f"{E}.entity_id", None, f"{E}.entity_id", "empty_id"),
    (IMP, "visitors.0.visitor_id", "", "visitors.0.visitor_id", "empty_id"),
    (IMP, "region", "APAC", "region", "region"),
    (IMP, f"{D}.metadata.rule_type", "mystery", f"{D}.metadata.rule_type", "rule_type"),
    (IMP, "visitors.0.snapshots", [], "visitors.0.snapshots", "nothing_to_record"),
    (
        IMP,
        "visitors.0.snapshots.0.events",
        [],
        "visitors.0.snapshots.0.events",
        "nothing_to_record",
    ),
]


def _json_path(dotted: str) -> str:
    parts = dotted.split(".")
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


@pytest.mark.parametrize(("base", "change", "value", "path", "rule"), WARNINGS)
def test_each_warning_rule_accepts_but_warns(
    base: dict[str, Any], change: str, value: Any, path: str, rule: str
) -> None:
    report = validate(mutate(base, change, value))
    assert report.errors == []
    assert (_json_path(path), rule) in _paths(report.warnings)


def test_unknown_fields_are_notes_with_a_suggestion() -> None:
    batch = mutate(IMP, "visitors.0.visitorId", "x")
    report = validate(batch)
    assert report.ok
    (note,) = report.notes
    assert note.path == "visitors[0].visitorId"
    assert note.rule == "unknown_field"
    assert "did you mean 'visitor_id'?" in note.message


@pytest.mark.parametrize("level", sorted(SCHEMA))
def test_unknown_fields_are_noted_at_every_level(level: str) -> None:
    where = {
        "batch": "",
        "visitor": "visitors.0.",
        "attribute": f"{A}.",
        "snapshot": "visitors.0.snapshots.0.",
        "decision": f"{D}.",
        "metadata": f"{D}.metadata.",
        "event": f"{E}.",
    }[level]
    report = validate(mutate(IMP, where + "zzz_extra", 1))
    assert [n.path for n in report.notes] == [_json_path(where + "zzz_extra")]
    assert report.ok


def test_sdk_edge_cases_are_warnings_not_errors() -> None:
    """No-decision impression (Python: "" ids, JS: null), rollout ids, empty metadata."""
    batch = mutate(IMP, f"{D}.variation_id", None)
    batch = mutate(batch, f"{D}.experiment_id", "")
    batch = mutate(batch, f"{D}.campaign_id", None)
    batch = mutate(batch, f"{E}.entity_id", None)
    batch = mutate(
        batch,
        f"{D}.metadata",
        {
            "flag_key": "",
            "rule_key": "",
            "rule_type": "rollout",
            "variation_key": "",
            "enabled": False,
        },
    )
    assert validate(batch).errors == []
    rollout = mutate(IMP, f"{D}.campaign_id", "default-layer-91112")
    rollout = mutate(rollout, f"{E}.entity_id", "default-layer-91112")
    assert validate(rollout).ok and validate(rollout).warnings == []


@pytest.mark.parametrize("value", [2**62, -(2**40), 1.5e300, 0.1, True, "ü€", ""])
def test_attribute_values_of_every_scalar_kind_are_accepted(value: Any) -> None:
    assert validate(mutate(IMP, f"{A}.value", value)).ok


@pytest.mark.parametrize(
    "payload",
    [
        {"visitors": [None, 1, "x", [], {"snapshots": [None, {"events": [None, {}]}]}]},
        {"account_id": "1", "visitors": [{"visitor_id": "v", "snapshots": [{"events": "x"}]}]},
        {"account_id": {"nested": [1, 2]}, "visitors": [{"attributes": [[], 3]}]},
    ],
)
def test_hostile_shapes_never_raise(payload: Any) -> None:
    report = validate(payload)
    assert report.errors


def test_long_actual_values_are_summarised() -> None:
    (violation,) = validate(mutate(IMP, "account_id", ["x"] * 50)).errors
    assert violation.actual == "<array of 50 items>"
    (violation,) = validate(mutate(IMP, f"{E}.uuid", 10**400)).errors
    assert violation.actual == "<integer of 401 digits>"


def test_free_form_values_nested_too_deep_are_an_error() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"a": deep}
    for where in ("zzz_unknown", f"{E}.tags", f"{A}.value", "visitors.0.attributes.0"):
        report = validate(mutate(IMP, where, deep))
        assert "depth" in [v.rule for v in report.errors], where
    shallow: Any = 1
    for _ in range(10):
        shallow = {"a": shallow}
    assert "depth" not in [v.rule for v in validate(mutate(IMP, "zzz_unknown", shallow)).errors]
