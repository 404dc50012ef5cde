"""mockserver.results: every counting rule, each with a case that moves one number of the
table (the rest of the table must not move), and the reasons events do not count.

Batches go through the real core (`Endpoint.handle`: decoding, validation, the journal)
into a memory journal, and the SQLite journal gives the same answer through its own scan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import DATAFILE, conversion, impression

from mockserver import (
    CoreRequest,
    Datafile,
    Datafiles,
    Endpoint,
    Journal,
    MemoryJournal,
    SqliteJournal,
)
from mockserver.journal.postgres import PostgresJournal
from mockserver.journal.results import REASONS, count_results

T = 1_767_225_600_000  # a fixed clock: 2026-01-01, in epoch milliseconds
CONTROL = ("111128", "control")
TREATMENT = ("111129", "treatment")


def imp(
    visitor: str, variation: tuple[str, str] = TREATMENT, ts: int = T, uuid: str | None = None
) -> dict[str, Any]:
    batch = impression(visitor, timestamp=ts)
    snapshot = batch["visitors"][0]["snapshots"][0]
    decision = snapshot["decisions"][0]
    decision["variation_id"], decision["metadata"]["variation_key"] = variation
    if uuid is not None:
        snapshot["events"][0]["uuid"] = uuid
    return batch


def conv(
    visitor: str, key: str = "purchase", ts: int = T + 1000, uuid: str | None = None, **event: Any
) -> dict[str, Any]:
    batch = conversion(key, visitor, timestamp=ts, **event)
    if uuid is not None:
        batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"] = uuid
    return batch


def send(endpoint: Endpoint, *batches: Any) -> None:
    for batch in batches:
        body = batch if isinstance(batch, bytes) else json.dumps(batch).encode()
        endpoint.handle(
            CoreRequest("POST", "/v1/events", body, [("content-type", "application/json")])
        )


def results(*batches: Any, datafile: Datafile | None = None, **filters: str) -> dict[str, Any]:
    endpoint = Endpoint(MemoryJournal())
    send(endpoint, *batches)
    files = Datafiles((datafile,)) if datafile else None
    return count_results(endpoint.journal.scan, datafiles=files, filters=filters).to_dict()


def cells(result: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """The table as {(experiment, variation, what): number}."""
    found: dict[tuple[str, ...], Any] = {}
    for e in result["experiments"]:
        name = e["experiment_key"] or e["experiment_id"]
        for v in e["variations"]:
            where = (name, v["variation_key"] or v["variation_id"])
            found[(*where, "visitors")] = v["visitors"]
            for cell in v["events"]:
                for what in ("unique_conversions", "conversions", "revenue"):
                    found[(*where, cell["key"], what)] = cell[what]
    return found


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """Each cell whose number differs: (was, now)."""
    old, new = cells(before), cells(after)
    return {k: (old.get(k), new.get(k)) for k in sorted({*old, *new}) if old.get(k) != new.get(k)}


def reasons(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(visitor, reason, key) of every uncounted event listed."""
    return [
        (group["visitor_id"], item["reason"], item["key"])
        for group in result["uncounted"]
        for item in group["events"]
    ]


# The base: user-1 in treatment converts (4200 cents), user-2 in control does not.
BASE = (imp("user-1", TREATMENT, uuid="i-1"), imp("user-2", CONTROL, uuid="i-2"))
PURCHASE = conv("user-1", revenue=4200, uuid="c-1")


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return results(*BASE, PURCHASE)


def test_the_base_table_hand_computed(base: dict[str, Any]) -> None:
    assert base["experiments"] == [
        {
            "experiment_id": "111127",
            "experiment_key": "checkout_ab",
            "rule_type": "feature-test",
            "flag_key": "checkout_flow",
            "variations": [
                {
                    "variation_id": "111128",
                    "variation_key": "control",
                    "visitors": 1,
                    "events": [
                        {"key": "purchase", "unique_conversions": 0, "conversions": 0, "revenue": 0}
                    ],
                },
                {
                    "variation_id": "111129",
                    "variation_key": "treatment",
                    "visitors": 1,
                    "events": [
                        {
                            "key": "purchase",
                            "unique_conversions": 1,
                            "conversions": 1,
                            "revenue": 4200,
                        }
                    ],
                },
            ],
        }
    ]
    assert (base["uncounted"], base["reasons"], base["left_off"]) == ([], {}, 0)
    assert base["counted"] == {"impressions": 2, "conversions": 1}


def test_a_visitor_counts_once_per_experiment(base: dict[str, Any]) -> None:
    again = imp("user-1", TREATMENT, ts=T + 5000)  # a second decide: same visitor
    assert changed(base, results(*BASE, PURCHASE, again)) == {}
    newcomer = imp("user-3", TREATMENT)
    assert changed(base, results(*BASE, PURCHASE, newcomer)) == {
        ("checkout_ab", "treatment", "visitors"): (1, 2)
    }


def test_the_first_impression_by_timestamp_decides_the_variation(base: dict[str, Any]) -> None:
    # user-3 is seen in control first (by arrival), but their treatment impression is older.
    late_arrival = (imp("user-3", CONTROL, ts=T + 2000), imp("user-3", TREATMENT, ts=T + 1000))
    result = results(*BASE, PURCHASE, *late_arrival)
    assert changed(base, result) == {("checkout_ab", "treatment", "visitors"): (1, 2)}
    assert reasons(result) == [("user-3", "other_variation", "campaign_activated")]
    (item,) = result["uncounted"][0]["events"]
    assert item["request_id"] == 4 and item["experiment_ids"] == ["111127"]
    assert "counts in variation '111129' of experiment '111127'" in item["message"]


def test_every_decision_counts_whatever_its_rule_type(base: dict[str, Any]) -> None:
    rollout = imp("user-1")
    decision = rollout["visitors"][0]["snapshots"][0]["decisions"][0]
    decision.update(
        campaign_id="default-layer-91112",
        experiment_id="default-rollout-91112",
        variation_id="v-91112-on",
        metadata={"flag_key": "banner", "rule_key": "default-rollout-91112",
                  "rule_type": "rollout", "variation_key": "on", "enabled": True},
    )  # fmt: skip
    rollout["visitors"][0]["snapshots"][0]["events"][0]["entity_id"] = "default-layer-91112"
    result = results(*BASE, PURCHASE, rollout)
    # user-1 converted after both impressions: the purchase counts in the rollout rule too.
    assert changed(base, result) == {
        ("default-rollout-91112", "on", "visitors"): (None, 1),
        ("default-rollout-91112", "on", "purchase", "unique_conversions"): (None, 1),
        ("default-rollout-91112", "on", "purchase", "conversions"): (None, 1),
        ("default-rollout-91112", "on", "purchase", "revenue"): (None, 4200),
    }
    shown = [(e["experiment_key"], e["rule_type"], e["flag_key"]) for e in result["experiments"]]
    assert shown == [
        ("default-rollout-91112", "rollout", "banner"),
        ("checkout_ab", "feature-test", "checkout_flow"),
    ]


def test_a_conversion_at_the_first_impression_counts_before_it_does_not(
    base: dict[str, Any],
) -> None:
    at = conv("user-1", ts=T)  # the same millisecond as user-1's first impression
    assert changed(base, results(*BASE, PURCHASE, at)) == {
        ("checkout_ab", "treatment", "purchase", "conversions"): (1, 2)
    }
    early = conv("user-1", ts=T - 1, uuid="c-early")
    result = results(*BASE, PURCHASE, early)
    assert changed(base, result) == {}
    assert reasons(result) == [("user-1", "before_impression", "purchase")]
    (item,) = result["uncounted"][0]["events"]
    assert item["message"] == (
        f"timestamp {T - 1} is before the visitor's first impression in '111127' at {T}: "
        "a conversion counts only at or after it; track after the decision"
    )
    assert (item["request_id"], item["path"], item["uuid"]) == (
        4,
        "visitors[0].snapshots[0].events[0]",
        "c-early",
    )


def test_a_conversion_counts_in_each_experiment_only_after_its_own_impression() -> None:
    other = imp("user-1", ts=T + 2000)
    decision = other["visitors"][0]["snapshots"][0]["decisions"][0]
    decision.update(experiment_id="222227", variation_id="222229", metadata={"rule_key": "x"})
    result = results(imp("user-1", ts=T), other, conv("user-1", ts=T + 1000))
    by_experiment = {
        e["experiment_id"]: [c["conversions"] for v in e["variations"] for c in v["events"]]
        for e in result["experiments"]
    }
    assert by_experiment == {"111127": [1], "222227": [0]}
    assert reasons(result) == [("user-1", "before_impression", "purchase")]
    assert result["uncounted"][0]["events"][0]["experiment_ids"] == ["222227"]
    assert result["counted"]["conversions"] == 1


def test_each_uuid_counts_once(base: dict[str, Any]) -> None:
    resent = conv("user-1", revenue=4200, uuid="c-1")  # a retry of the same event
    result = results(*BASE, PURCHASE, resent)
    assert changed(base, result) == {}
    assert reasons(result) == [("user-1", "duplicate", "purchase")]
    assert result["uncounted"][0]["events"][0]["message"] == (
        "uuid 'c-1' arrived before (request #3): Optimizely counts each uuid once; "
        "give every event its own uuid"
    )
    fresh = conv("user-1", uuid="c-2")  # the same visitor converts again: a new uuid
    assert changed(base, results(*BASE, PURCHASE, fresh)) == {
        ("checkout_ab", "treatment", "purchase", "conversions"): (1, 2)
    }


def test_unique_conversions_count_visitors(base: dict[str, Any]) -> None:
    other_visitor = conv("user-2", uuid="c-3")
    assert changed(base, results(*BASE, PURCHASE, other_visitor)) == {
        ("checkout_ab", "control", "purchase", "unique_conversions"): (0, 1),
        ("checkout_ab", "control", "purchase", "conversions"): (0, 1),
    }


def test_revenue_adds_integer_revenue_only(base: dict[str, Any]) -> None:
    assert changed(base, results(*BASE, conv("user-1", revenue=4300, uuid="c-1"))) == {
        ("checkout_ab", "treatment", "purchase", "revenue"): (4200, 4300)
    }
    in_tags = conv("user-1", tags={"revenue": 4200}, uuid="c-1")
    result = results(*BASE, in_tags)
    assert changed(base, result) == {("checkout_ab", "treatment", "purchase", "revenue"): (4200, 0)}
    assert reasons(result) == [("user-1", "revenue_only_in_tags", "purchase")]
    dollars = conv("user-1", tags={"revenue": 42.0}, uuid="c-1")
    result = results(*BASE, dollars)
    assert changed(base, result) == {("checkout_ab", "treatment", "purchase", "revenue"): (4200, 0)}
    assert reasons(result) == [("user-1", "revenue_not_integer", "purchase")]
    assert result["uncounted"][0]["events"][0]["message"].startswith(
        "revenue 42.0 is not an integer: results add only integer revenue, in cents"
    )
    assert result["counted"]["conversions"] == 1  # the conversion itself still counts


def test_a_visitor_in_no_experiment_converts_for_nothing(base: dict[str, Any]) -> None:
    result = results(*BASE, PURCHASE, conv("user-9"))
    assert changed(base, result) == {}
    assert reasons(result) == [("user-9", "no_experiment", "purchase")]


def test_impressions_that_name_no_experiment_count_for_nothing(base: dict[str, Any]) -> None:
    no_decision = imp("user-3")
    decision = no_decision["visitors"][0]["snapshots"][0]["decisions"][0]
    decision.update(campaign_id="", experiment_id="", variation_id=None)
    bare = imp("user-4")
    del bare["visitors"][0]["snapshots"][0]["decisions"]
    result = results(*BASE, PURCHASE, no_decision, bare)
    assert changed(base, result) == {}
    assert reasons(result) == [
        ("user-3", "no_experiment", "campaign_activated"),
        ("user-4", "no_experiment", "campaign_activated"),
    ]


def test_rejected_and_faulted_requests_count_for_nothing(base: dict[str, Any]) -> None:
    rejected = {**PURCHASE, "account_id": 12001}  # not a string: production drops it
    result = results(*BASE, rejected)
    assert changed(base, result) == {
        ("checkout_ab", "treatment", "purchase", "unique_conversions"): (1, None),
        ("checkout_ab", "treatment", "purchase", "conversions"): (1, None),
        ("checkout_ab", "treatment", "purchase", "revenue"): (4200, None),
        ("checkout_ab", "control", "purchase", "unique_conversions"): (0, None),
        ("checkout_ab", "control", "purchase", "conversions"): (0, None),
        ("checkout_ab", "control", "purchase", "revenue"): (0, None),
    }
    assert reasons(result) == [("user-1", "rejected", "purchase")]
    assert result["uncounted"][0]["events"][0]["message"] == (
        "the request was rejected: account_id: 'account_id' must be a string, got integer "
        "[type]; production drops the whole batch"
    )
    endpoint = Endpoint(MemoryJournal())
    send(endpoint, *BASE)
    endpoint.faults.add(status=503, times=1)
    send(endpoint, PURCHASE)
    faulted = count_results(endpoint.journal.scan).to_dict()
    assert [e["reason"] for g in faulted["uncounted"] for e in g["events"]] == ["faulted"]
    assert "injected status" in faulted["uncounted"][0]["events"][0]["message"]
    send(endpoint, b"{not json", PURCHASE)  # malformed: no events; the retry counts
    assert changed(base, count_results(endpoint.journal.scan).to_dict()) == {}


def test_keys_come_from_the_datafile_when_the_payload_has_only_ids() -> None:
    ids_only = imp("user-1")
    del ids_only["visitors"][0]["snapshots"][0]["decisions"][0]["metadata"]
    keyless = conv("user-1", key=None)  # entity_id 111095 only
    del keyless["visitors"][0]["snapshots"][0]["events"][0]["key"]
    bare = results(ids_only, keyless)["experiments"]
    assert [(e["experiment_key"], e["flag_key"], e["rule_type"]) for e in bare] == [
        (None, None, None)
    ]
    assert [
        (v["variation_key"], [c["key"] for c in v["events"]]) for v in bare[0]["variations"]
    ] == [(None, ["entity_id '111095'"])]
    named = results(ids_only, keyless, datafile=Datafile.load(DATAFILE))["experiments"]
    assert [(e["experiment_key"], e["flag_key"], e["rule_type"]) for e in named] == [
        ("checkout_ab", "checkout_flow", None)
    ]
    # With a datafile every variation shows, those no visitor saw at 0.
    assert [(v["variation_key"], v["visitors"], [c["key"] for c in v["events"]])
            for v in named[0]["variations"]] == [
        ("control", 0, ["purchase"]), ("treatment", 1, ["purchase"])
    ]  # fmt: skip


def test_the_datafile_wins_over_metadata_that_contradicts_it() -> None:
    wrong = imp("user-1")
    wrong["visitors"][0]["snapshots"][0]["decisions"][0]["metadata"]["rule_key"] = "checkout_abc"
    (experiment,) = results(wrong, datafile=Datafile.load(DATAFILE))["experiments"]
    assert experiment["experiment_key"] == "checkout_ab"
    (experiment,) = results(wrong)["experiments"]
    assert experiment["experiment_key"] == "checkout_abc"


def test_filters_choose_the_events_counted(base: dict[str, Any]) -> None:
    other_client = conv("user-1", uuid="c-9")
    other_client["client_name"] = "node-sdk"
    assert changed(base, results(*BASE, PURCHASE, other_client, client_name="python-sdk")) == {}
    only_user_2 = results(*BASE, PURCHASE, visitor_id="user-2")
    assert [v["visitors"] for v in only_user_2["experiments"][0]["variations"]] == [1]
    with pytest.raises(ValueError, match="unknown event filter"):
        results(*BASE, client="python-sdk")


def test_the_uncounted_list_is_bounded_the_counts_are_not() -> None:
    strays = [conv(f"stray-{n}") for n in range(5)]
    endpoint = Endpoint(MemoryJournal())
    send(endpoint, *strays)
    result = count_results(endpoint.journal.scan, limit=2).to_dict()
    assert [g["visitor_id"] for g in result["uncounted"]] == ["stray-0", "stray-1"]
    assert (result["reasons"], result["left_off"]) == ({"no_experiment": 5}, 3)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_the_durable_journals_give_the_same_answer(
    tmp_path: Path, base: dict[str, Any], store: str, request: pytest.FixtureRequest
) -> None:
    journal: Journal
    if store == "sqlite":
        journal = SqliteJournal(tmp_path / "journal.db")
    else:
        journal = PostgresJournal(request.getfixturevalue("pg_url"))
    endpoint = Endpoint(journal)
    resent = conv("user-1", revenue=4200, uuid="c-1")
    send(endpoint, *BASE, PURCHASE, resent, conv("user-9"))
    try:
        repeated = journal.repeated_uuids()
        result = count_results(journal.scan, repeated=repeated).to_dict()
    finally:
        journal.close()
    assert repeated == {"c-1"}  # only the uuid that repeats is remembered
    assert result["experiments"] == base["experiments"]
    assert reasons(result) == [
        ("user-1", "duplicate", "purchase"),
        ("user-9", "no_experiment", "purchase"),
    ]


def test_the_readme_explains_every_reason() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Would it count? Results", 1)[1].split("\n## ", 1)[0]
    for reason in REASONS:
        assert f"`{reason}`" in section, reason


def test_a_time_window_keeps_only_events_stamped_within_it(base: dict[str, Any]) -> None:
    endpoint = Endpoint(MemoryJournal())
    send(endpoint, *BASE, PURCHASE)  # impressions at T, the purchase at T + 1000

    def window(**bounds: int) -> dict[str, Any]:
        return count_results(endpoint.journal.scan, **bounds).to_dict()

    assert window(start=T, end=T + 1001) == base
    assert changed(base, window(end=T + 1000)) == {
        ("checkout_ab", "treatment", "purchase", "unique_conversions"): (1, None),
        ("checkout_ab", "treatment", "purchase", "conversions"): (1, None),
        ("checkout_ab", "treatment", "purchase", "revenue"): (4200, None),
        ("checkout_ab", "control", "purchase", "unique_conversions"): (0, None),
        ("checkout_ab", "control", "purchase", "conversions"): (0, None),
        ("checkout_ab", "control", "purchase", "revenue"): (0, None),
    }
    later = window(start=T + 1)  # the impressions fall out: the purchase has no experiment
    assert (later["experiments"], reasons(later)) == (
        [],
        [("user-1", "no_experiment", "purchase")],
    )
    empty = window(start=T, end=T)
    assert (empty["experiments"], empty["counted"]) == ([], {"impressions": 0, "conversions": 0})
