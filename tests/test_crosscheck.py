"""Datafile checks: the real SDK's batches pass clean; each wrong id gets exactly one
warning, at its path."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from helpers import DATAFILE, DELETE, mutate
from sdk_traffic import SDK_BATCHES, capture, sdk_batch

from mockserver import DATAFILE_RULES, Datafile, Datafiles, crosscheck, validate
from mockserver.contract.validation import WARNING_RULES

DF = Datafiles((Datafile.load(DATAFILE),))
D = "visitors.0.snapshots.0.decisions.0"
E = "visitors.0.snapshots.0.events.0"
A = "visitors.0.attributes"


def json_path(dotted: str) -> str:
    """`visitors.0.attributes.1.value` -> `visitors[0].attributes[1].value`."""
    return re.sub(r"\.(\d+)", r"[\1]", dotted)


def findings(payload: dict[str, Any], datafiles: Datafiles = DF) -> list[tuple[str, str]]:
    report = validate(payload)
    crosscheck(payload, datafiles, report)
    return [(v.rule, v.path) for v in report.warnings]


def new_findings(name: str, changes: dict[str, Any]) -> list[tuple[str, str]]:
    original = sdk_batch(name)
    tampered = original
    for path, value in changes.items():
        tampered = mutate(tampered, path, value)
    before = findings(original)
    return [f for f in findings(tampered) if f not in before]


@pytest.mark.parametrize("name", SDK_BATCHES)
def test_real_sdk_batches_get_no_datafile_warning(name: str) -> None:
    payload = sdk_batch(name)
    report = validate(payload)
    keys = crosscheck(payload, DF, report)
    assert [str(v) for v in report.warnings if v.rule in DATAFILE_RULES] == []
    assert report.errors == []
    assert keys  # the datafile resolved something in every batch (at least an attribute)


def with_holdout(section: str) -> dict[str, Any]:
    """The test datafile plus a holdout that takes every visitor (as datafiles of 2026 carry
    them: no layerId; a local one names the rules it holds out)."""
    data: dict[str, Any] = json.loads(DATAFILE.read_text())
    holdout = {
        "id": "1681267",
        "key": "ho_everyone",
        "status": "Running",
        "variations": [{"id": "1681268", "key": "ho_off", "featureEnabled": False}],
        "trafficAllocation": [{"entityId": "1681268", "endOfRange": 10000}],
        "audienceIds": [],
        "audienceConditions": [],
    }
    if section == "localHoldouts":
        holdout["includedRules"] = ["111127"]
    data[section] = [holdout]
    return data


@pytest.mark.parametrize("section", ["holdouts", "localHoldouts"])
def test_real_sdk_holdout_decisions_get_no_datafile_warning(section: str) -> None:
    data = with_holdout(section)

    def drive(client: Any) -> None:
        user = client.create_user_context("held-out", {"plan": "pro"})
        assert user.decide("checkout_flow").rule_key == "ho_everyone"

    batches = capture(json.dumps(data), drive)
    datafiles = Datafiles((Datafile.from_dict(data),))
    (decision,) = batches[0]["visitors"][0]["snapshots"][0]["decisions"]
    # The SDK sends the holdout's own id as its campaign: a holdout has no layer.
    assert decision["campaign_id"] == decision["experiment_id"] == "1681267"
    assert findings(batches[0], datafiles) == []
    keys = crosscheck(batches[0], datafiles, validate(batches[0]))
    assert keys[f"{json_path(D)}.experiment_id"] == "ho_everyone"
    assert keys[f"{json_path(D)}.variation_id"] == "ho_off"
    tampered = mutate(batches[0], f"{D}.variation_id", "111129")
    assert findings(tampered, datafiles) == [("variation_mismatch", f"{json_path(D)}.variation_id")]


# (test id, SDK batch, {dotted path: new value}, rule, where the warning must be)
TAMPERED = [
    ("account", "activate", {"account_id": "99999"}, "account_mismatch", "account_id"),
    ("project", "activate", {"project_id": "999001"}, "project_mismatch", "project_id"),
    ("revision", "activate", {"revision": "41"}, "revision_mismatch", "revision"),
    ("event-id", "track", {f"{E}.entity_id": "999095"}, "unknown_event", f"{E}.entity_id"),
    ("event-key", "track", {f"{E}.key": "signup"}, "event_key_mismatch", f"{E}.key"),
    (
        "impression-entity",
        "activate",
        {f"{E}.entity_id": "default-layer-91112"},
        "impression_mismatch",
        f"{E}.entity_id",
    ),
    (
        "campaign-unknown",
        "activate",
        {f"{D}.campaign_id": "999182", f"{E}.entity_id": "999182"},
        "unknown_campaign",
        f"{D}.campaign_id",
    ),
    (
        "campaign-of-another-experiment",
        "activate",
        {f"{D}.campaign_id": "default-layer-91112", f"{E}.entity_id": "default-layer-91112"},
        "campaign_mismatch",
        f"{D}.campaign_id",
    ),
    (
        "experiment",
        "activate",
        {f"{D}.experiment_id": "999127"},
        "unknown_experiment",
        f"{D}.experiment_id",
    ),
    (
        "variation-of-another-experiment",
        "activate",
        {f"{D}.variation_id": "v-91112-on"},
        "variation_mismatch",
        f"{D}.variation_id",
    ),
    (
        "variation-unknown",
        "feature_test",
        {f"{D}.variation_id": "999128"},
        "variation_mismatch",
        f"{D}.variation_id",
    ),
    (
        "flag-of-another-rule",
        "feature_test",
        {f"{D}.metadata.flag_key": "banner"},
        "metadata_mismatch",
        f"{D}.metadata.flag_key",
    ),
    (
        "flag-unknown",
        "no_decision",
        {f"{D}.metadata.flag_key": "recz"},
        "metadata_mismatch",
        f"{D}.metadata.flag_key",
    ),
    (
        "rule-key",
        "activate",
        {f"{D}.metadata.rule_key": "checkout_abc"},
        "metadata_mismatch",
        f"{D}.metadata.rule_key",
    ),
    (
        "variation-key",
        "activate",
        {f"{D}.metadata.variation_key": "off"},
        "metadata_mismatch",
        f"{D}.metadata.variation_key",
    ),
    (
        "variation-key-with-null-variation-id",
        "rollout",
        {f"{D}.metadata.variation_key": "off"},
        "metadata_mismatch",
        f"{D}.metadata.variation_key",
    ),
    (
        "attribute-id",
        "activate",
        {f"{A}.0.entity_id": "9999"},
        "unknown_attribute",
        f"{A}.0.entity_id",
    ),
    ("attribute-key", "activate", {f"{A}.0.key": "plna"}, "attribute_mismatch", f"{A}.0.key"),
    (
        "anonymize-ip",
        "activate",
        {"anonymize_ip": False},
        "anonymize_ip_mismatch",
        "anonymize_ip",
    ),
    ("bot-filtering-missing", "activate", {f"{A}.1": DELETE}, "bot_filtering", A),
    ("bot-filtering-value", "activate", {f"{A}.1.value": False}, "bot_filtering", f"{A}.1.value"),
]


@pytest.mark.parametrize(
    ("name", "changes", "rule", "where"),
    [pytest.param(*case[1:], id=case[0]) for case in TAMPERED],
)
def test_one_wrong_id_gets_exactly_one_warning_at_its_path(
    name: str, changes: dict[str, Any], rule: str, where: str
) -> None:
    assert new_findings(name, changes) == [(rule, json_path(where))]


def test_every_datafile_rule_has_a_tampering_test() -> None:
    tested = {case[3] for case in TAMPERED}
    assert set(DATAFILE_RULES) <= tested
    assert not set(DATAFILE_RULES) & set(WARNING_RULES)  # one rule table each


def test_messages_name_the_wrong_id_and_the_right_one() -> None:
    payload = mutate(sdk_batch("track"), f"{E}.entity_id", "999095")
    report = validate(payload)
    crosscheck(payload, DF, report)
    (warning,) = report.warnings
    assert warning.actual == "999095"
    assert warning.expected == "111095"  # the id of the event the key names
    assert "the datafile's event 'purchase' has id '111095'" in warning.message

    payload = mutate(sdk_batch("activate"), f"{D}.variation_id", "v-91112-on")
    report = validate(payload)
    crosscheck(payload, DF, report)
    (warning,) = report.warnings
    assert "it is a variation of 'default-rollout-91112'" in warning.message
    assert warning.expected == "111128 (control), 111129 (treatment)"


def test_keys_are_resolved_next_to_their_ids() -> None:
    payload = sdk_batch("feature_test")
    keys = crosscheck(payload, DF, validate(payload))
    decision = json_path(D)
    assert keys == {
        f"{json_path(A)}[0].entity_id": "plan",
        f"{decision}.experiment_id": "checkout_ab",
        f"{decision}.variation_id": "treatment",
        decision: "checkout_flow",
    }
    conversion = sdk_batch("track")
    keys = crosscheck(conversion, DF, validate(conversion))
    assert keys[f"{json_path(E)}.entity_id"] == "purchase"
    assert keys[f"{json_path(A)}[1].entity_id"] == "città"


def test_dependent_checks_wait_for_a_known_experiment() -> None:
    """An unknown experiment_id is one warning, not one per field that depends on it."""
    payload = mutate(sdk_batch("feature_test"), f"{D}.experiment_id", "999127")
    assert findings(payload) == [("unknown_experiment", f"{json_path(D)}.experiment_id")]


def test_conversion_sent_with_a_key_only_is_checked_by_key() -> None:
    payload = mutate(sdk_batch("track"), f"{E}.entity_id", DELETE)
    assert findings(payload) == []
    payload = mutate(payload, f"{E}.key", "purchse")
    assert findings(payload) == [("unknown_event", f"{json_path(E)}.key")]


# Choosing among several datafiles -------------------------------------------------


def other_revision(revision: str, **changes: Any) -> Datafile:
    data = json.loads(DATAFILE.read_text())
    data["revision"] = revision
    data.update(changes)
    return Datafile.from_dict(data, source=f"revision-{revision}.json")


def renamed_experiment(revision: str) -> Datafile:
    data = json.loads(DATAFILE.read_text())
    data["revision"] = revision
    data["experiments"][0]["key"] = "checkout_renamed"
    return Datafile.from_dict(data, source=f"revision-{revision}.json")


def test_the_batch_revision_chooses_among_datafiles_of_one_project() -> None:
    files = Datafiles((renamed_experiment("43"), Datafile.load(DATAFILE)))
    payload = sdk_batch("feature_test")  # revision 42
    keys = crosscheck(payload, files, validate(payload))
    assert keys[f"{json_path(D)}.experiment_id"] == "checkout_ab"
    payload["revision"] = "43"
    report = validate(payload)
    keys = crosscheck(payload, files, report)
    assert keys[f"{json_path(D)}.experiment_id"] == "checkout_renamed"
    assert [v.rule for v in report.warnings] == ["metadata_mismatch"]  # rule_key is old


def test_an_unknown_revision_is_checked_against_the_newest_and_warned() -> None:
    files = Datafiles((Datafile.load(DATAFILE), renamed_experiment("43")))
    payload = mutate(sdk_batch("activate"), "revision", "7")
    report = validate(payload)
    keys = crosscheck(payload, files, report)
    revision = report.warnings[0]
    assert (revision.rule, revision.expected, revision.actual) == (
        "revision_mismatch",
        "42, 43",
        "7",
    )
    assert keys[f"{json_path(D)}.experiment_id"] == "checkout_renamed"
    payload = mutate(payload, "revision", DELETE)
    report = validate(payload)
    crosscheck(payload, files, report)
    assert "revision_mismatch" not in {v.rule for v in report.warnings}


def test_the_project_id_chooses_the_datafile() -> None:
    other = other_revision("1", projectId="222001", accountId="12001")
    files = Datafiles((other, Datafile.load(DATAFILE)))
    assert findings(sdk_batch("activate"), files) == []
    payload = mutate(sdk_batch("activate"), "project_id", "333001")
    report = validate(payload)
    assert crosscheck(payload, files, report) == {}  # another project: nothing more is checked
    (warning,) = report.warnings
    assert (warning.rule, warning.expected) == ("project_mismatch", "111001, 222001")


def test_one_datafile_checks_a_batch_without_project_id() -> None:
    payload = mutate(sdk_batch("activate"), "project_id", DELETE)
    payload = mutate(payload, f"{D}.experiment_id", "999127")
    assert findings(payload) == [("unknown_experiment", f"{json_path(D)}.experiment_id")]


def test_without_datafiles_nothing_is_checked_or_resolved() -> None:
    payload = mutate(sdk_batch("activate"), "account_id", "99999")
    report = validate(payload)
    assert crosscheck(payload, Datafiles(), report) == {}
    assert report.warnings == []


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "x",
        {"visitors": "x"},
        {"visitors": [1, None, {"snapshots": {"a": 1}}]},
        {"visitors": [{"attributes": [None, {"entity_id": 5}], "snapshots": [None, {}]}]},
        {"visitors": [{"snapshots": [{"decisions": [{"experiment_id": ["x"]}], "events": [{}]}]}]},
        {"anonymize_ip": "yes", "project_id": 111001, "revision": 42, "account_id": None},
    ],
    ids=lambda p: json.dumps(p)[:40],
)
def test_any_shape_is_checked_without_raising(payload: Any) -> None:
    report = validate(payload)
    crosscheck(payload, DF, report)  # the point: no exception, whatever the shape
    assert all(v.rule in DATAFILE_RULES or v.rule in WARNING_RULES for v in report.warnings)


# Bot filtering: only a datafile that turns it on asks for the attribute -----------------


def bot_filtering(setting: bool | None) -> Datafiles:
    return Datafiles((other_revision("42", botFiltering=setting),))


@pytest.mark.parametrize("setting", [False, None])
@pytest.mark.parametrize("sent", [DELETE, True, False], ids=["absent", "true", "false"])
def test_bot_filtering_is_not_warned_where_the_datafile_leaves_it_off(
    setting: bool | None, sent: Any
) -> None:
    """A batch without `$opt_bot_filtering` (or with any value) is fine for a project
    whose datafile has `"botFiltering": false`: there is nothing to filter."""
    payload = mutate(sdk_batch("activate"), f"{A}.1" if sent is DELETE else f"{A}.1.value", sent)
    assert findings(payload, bot_filtering(setting)) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [({f"{A}.1": DELETE}, A), ({f"{A}.1.value": False}, f"{A}.1.value")],
    ids=["absent", "false"],
)
def test_bot_filtering_is_warned_where_the_datafile_turns_it_on(
    change: dict[str, Any], where: str
) -> None:
    ((path, value),) = change.items()
    payload = mutate(sdk_batch("activate"), path, value)
    assert findings(payload, bot_filtering(True)) == [("bot_filtering", json_path(where))]
