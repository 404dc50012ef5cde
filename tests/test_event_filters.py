"""The event filters are the pytest handle's, everywhere: every journal, the admin API, the
`events` command; an enum filter refuses a value it cannot take."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from helpers import DATAFILE, conversion, impression
from test_journal import _post

from mockserver import Datafile, Datafiles, Endpoint, EndpointConfig, Journal, ThreadedServer
from mockserver.serve.cli import main
from pytest_plugin.handle import LogxHandle

DF = Datafiles((Datafile.load(DATAFILE),))


def two_decisions() -> dict[str, Any]:
    """One impression carrying two decisions: checkout_flow/treatment and banner/on."""
    batch = impression("two-decisions")
    snapshot = batch["visitors"][0]["snapshots"][0]
    other = copy.deepcopy(snapshot["decisions"][0])
    other.update(campaign_id="91112", experiment_id="91112", variation_id="91113")
    other["metadata"].update(
        flag_key="banner", rule_key="banner_rollout", rule_type="rollout", variation_key="on"
    )
    snapshot["decisions"].append(other)
    return batch


def ids_only() -> dict[str, Any]:
    """An older SDK's impression: ids only; the datafile names them."""
    batch = impression("ids-only")
    del batch["visitors"][0]["snapshots"][0]["decisions"][0]["metadata"]
    return batch


def keyless() -> dict[str, Any]:
    """A conversion sent with only its entity_id; the datafile names it `purchase`."""
    batch = conversion("purchase", "keyless", revenue=4200)
    del batch["visitors"][0]["snapshots"][0]["events"][0]["key"]
    return batch


BATCHES = {
    "with-metadata": impression("with-metadata"),
    "ids-only": ids_only(),
    "two-decisions": two_decisions(),
    "keyless": keyless(),
    "signup": conversion("signup", "signup"),
}
QUERIES: list[dict[str, str]] = [
    {"flag_key": "checkout_flow"},
    {"flag_key": "banner"},
    {"experiment_key": "checkout_ab"},
    {"variation_key": "treatment"},
    {"variation_key": "on", "flag_key": "banner"},
    {"variation_key": "on", "flag_key": "checkout_flow"},  # two decisions, never one
    {"experiment_id": "111127"},
    {"variation_id": "111129", "kind": "impression"},
    {"campaign_id": "91112"},
    {"rule_key": "checkout_ab"},
    {"rule_type": "rollout"},
    {"key": "purchase"},
    {"key": "signup", "kind": "conversion"},
    {"visitor_id": "ids-only", "flag_key": "checkout_flow"},
]
EXPECTED = {
    0: ["with-metadata", "ids-only", "two-decisions"],
    1: ["two-decisions"],
    2: ["with-metadata", "ids-only", "two-decisions"],
    3: ["with-metadata", "ids-only", "two-decisions"],
    4: ["two-decisions"],
    5: [],
    6: ["with-metadata", "ids-only", "two-decisions"],
    7: ["with-metadata", "ids-only", "two-decisions"],
    8: ["two-decisions"],
    9: ["with-metadata", "two-decisions"],  # rule_key as sent: ids-only sent none
    10: ["two-decisions"],
    11: ["keyless"],  # found by the datafile's key of its entity_id
    12: ["signup"],
    13: ["ids-only"],
}


def record_all(endpoint: Endpoint) -> None:
    for batch in BATCHES.values():
        _post(endpoint, batch)


def visitors(events: list[Any]) -> list[str]:
    return [e["visitor_id"] if isinstance(e, dict) else e.visitor_id for e in events]


def test_expectations_cover_every_query() -> None:
    assert sorted(EXPECTED) == list(range(len(QUERIES)))


@pytest.mark.parametrize("number", range(len(QUERIES)), ids=lambda n: str(QUERIES[n]))
def test_every_journal_filters_as_the_handle_does(
    make_journal: Callable[..., Journal], number: int
) -> None:
    endpoint = Endpoint(make_journal(), config=EndpointConfig(datafiles=DF))
    record_all(endpoint)
    query = QUERIES[number]
    assert visitors(endpoint.journal.events(**query)) == EXPECTED[number]
    handle = LogxHandle(endpoint)
    assert visitors(handle.get_events(**query)) == EXPECTED[number]


def test_tail_gives_the_newest_in_arrival_order(make_journal: Callable[..., Journal]) -> None:
    endpoint = Endpoint(make_journal(), config=EndpointConfig(datafiles=DF))
    record_all(endpoint)
    journal = endpoint.journal
    assert visitors(journal.events(limit=2, tail=True)) == ["keyless", "signup"]
    assert visitors(journal.events(limit=2, tail=True, kind="impression")) == [
        "ids-only",
        "two-decisions",
    ]
    assert visitors(journal.events(limit=1, tail=True, flag_key="checkout_flow")) == [
        "two-decisions"
    ]
    assert visitors(journal.events(limit=2)) == ["with-metadata", "ids-only"]


@pytest.fixture(scope="module")
def server() -> Any:
    with ThreadedServer(Endpoint(__import__("mockserver").MemoryJournal())) as running:
        running.endpoint.use_datafiles(DF)
        for batch in BATCHES.values():
            assert requests.post(running.events_url, json=batch, timeout=10).status_code == 204
        yield running


@pytest.mark.parametrize("number", range(len(QUERIES)), ids=lambda n: str(QUERIES[n]))
def test_the_admin_api_filters_as_the_handle_does(server: ThreadedServer, number: int) -> None:
    answer = requests.get(server.url + "/_mock/events", params=QUERIES[number], timeout=10)
    assert answer.status_code == 200, answer.text
    assert visitors(answer.json()["events"]) == EXPECTED[number]


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        (
            "events",
            {"kind": "impresion"},
            "kind='impresion' is not a kind; use impression, conversion",
        ),
        (
            "events",
            {"verdict": "bogus"},
            "verdict='bogus' is not a verdict; use accepted, rejected, malformed, too_large, "
            "faulted",
        ),
        ("requests", {"verdict": "bogus"}, "verdict='bogus' is not a verdict; use accepted"),
        ("results", {"kind": "conversoin"}, "kind='conversoin' is not a kind; use impression"),
        ("events", {"tail": "maybe"}, "tail='maybe' is not true or false"),
    ],
)
def test_an_enum_filter_refuses_what_it_cannot_be(
    server: ThreadedServer, path: str, query: dict[str, str], message: str
) -> None:
    answer = requests.get(f"{server.url}/_mock/{path}", params=query, timeout=10)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert message in answer.json()["detail"]


def test_the_admin_api_tail(server: ThreadedServer) -> None:
    answer = requests.get(
        server.url + "/_mock/events", params={"limit": 2, "tail": "true"}, timeout=10
    ).json()
    assert visitors(answer["events"]) == ["keyless", "signup"]


def test_the_openapi_document_lists_every_filter_with_its_values(server: ThreadedServer) -> None:
    from mockserver.journal.filters import EVENT_FILTERS, FILTER_HELP

    document = requests.get(server.url + "/_mock/openapi.json", timeout=10).json()
    parameters = {p["name"]: p for p in document["paths"]["/_mock/events"]["get"]["parameters"]}
    assert set(EVENT_FILTERS) | {"after", "after_index", "limit", "wait", "tail"} == set(parameters)
    for name in EVENT_FILTERS:
        assert parameters[name]["description"] == FILTER_HELP[name]
    assert parameters["kind"]["schema"] == {"enum": ["impression", "conversion"]}
    assert "faulted" in parameters["verdict"]["schema"]["enum"]
    (verdict,) = [
        p
        for p in document["paths"]["/_mock/requests"]["get"]["parameters"]
        if p["name"] == "verdict"
    ]
    assert verdict["schema"] == parameters["verdict"]["schema"]


def test_the_events_command_takes_every_filter(
    server: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "--url", server.url, "--flag-key", "banner", "--json"]) == 0
    assert visitors([json.loads(line) for line in capsys.readouterr().out.splitlines()]) == [
        "two-decisions"
    ]
    assert main(["events", "--url", server.url, "--key", "purchase", "--json"]) == 0
    assert visitors([json.loads(line) for line in capsys.readouterr().out.splitlines()]) == [
        "keyless"
    ]
    with pytest.raises(SystemExit) as exited:
        main(["events", "--url", server.url, "--kind", "impresion"])
    assert exited.value.code == 2
    assert "invalid choice: 'impresion' (choose from impression, conversion)" in (
        capsys.readouterr().err.replace("'impression', 'conversion'", "impression, conversion")
    )


def test_every_integer_query_parameter_says_its_bounds(server: ThreadedServer) -> None:
    # The server refuses an integer past its bound with a 400, so the document must say the
    # bound: schemathesis found after_index documented without one.
    document = requests.get(server.url + "/_mock/openapi.json", timeout=10).json()
    unbounded = [
        (path, method, parameter["name"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
        and parameter.get("schema", {}).get("type") == "integer"
        and "maximum" not in parameter["schema"]
    ]
    assert unbounded == []
