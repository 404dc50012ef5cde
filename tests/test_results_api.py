"""GET /_mock/results on a real server over a SQLite file, and `logx-mock results`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from test_results import BASE, PURCHASE, T, cells, conv, reasons

from mockserver import ThreadedServer
from mockserver.serve.cli import main

PURCHASE_AT = T + 1000


def post(server: ThreadedServer, *batches: Any) -> None:
    for batch in batches:
        assert requests.post(server.events_url, json=batch, timeout=5).status_code == 204


def get(server: ThreadedServer, **params: Any) -> requests.Response:
    return requests.get(server.url + "/_mock/results", params=params, timeout=10)


def test_results_over_http(sqlite_server: ThreadedServer) -> None:
    post(sqlite_server, *BASE, PURCHASE, conv("user-9"))
    answer = get(sqlite_server)
    assert answer.status_code == 200
    result = answer.json()
    assert cells(result)[("checkout_ab", "treatment", "purchase", "revenue")] == 4200
    assert reasons(result) == [("user-9", "no_experiment", "purchase")]
    assert (result["last_id"], result["left_off"]) == (4, 0)
    assert result["uncounted"][0]["events"][0]["request_id"] == 4


def test_after_and_filters_narrow_what_counts(sqlite_server: ThreadedServer) -> None:
    post(sqlite_server, *BASE, PURCHASE)
    later = get(sqlite_server, after=2).json()  # only the purchase: user-1 has no impression
    assert (later["experiments"], reasons(later)) == ([], [("user-1", "no_experiment", "purchase")])
    only_user_2 = get(sqlite_server, visitor_id="user-2").json()
    assert [v["visitors"] for v in only_user_2["experiments"][0]["variations"]] == [1]
    assert get(sqlite_server, client_name="go-sdk").json()["experiments"] == []
    windowed = get(sqlite_server, end=PURCHASE_AT).json()  # the purchase falls out
    assert (windowed["counted"], windowed["reasons"]) == ({"impressions": 2, "conversions": 0}, {})
    assert main(["results", "--url", sqlite_server.url, "--start", str(PURCHASE_AT)]) == 0
    bounded = get(sqlite_server, limit=1, after=2).json()
    assert (len(bounded["uncounted"]), bounded["reasons"]) == (1, {"no_experiment": 1})


def test_a_bad_query_says_what_to_send(sqlite_server: ThreadedServer) -> None:
    for params, message in (
        ({"limit": 0}, "limit=0 is out of range; use 1 to 100,000"),
        ({"after": "x"}, "after='x' is not an integer"),
        ({"client": "python-sdk"}, "unknown query parameter(s) client; use account_id"),
        ({"start": -1}, "start=-1 is out of range"),
    ):
        answer = get(sqlite_server, **params)
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert message in answer.json()["detail"]


def test_results_command_prints_the_table(
    sqlite_server: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    post(sqlite_server, *BASE, PURCHASE, conv("user-9"))
    assert main(["results", "--url", sqlite_server.url]) == 0
    assert capsys.readouterr().out == (
        "checkout_ab (experiment 111127, flag checkout_flow, feature-test)\n"
        "  variation           visitors  event     unique  conversions  revenue\n"
        "  control (111128)           1  purchase       0            0        0\n"
        "  treatment (111129)         1  purchase       1            1     4200\n"
        "\n"
        "Did not count: 1 event(s) (no_experiment 1):\n"
        "  visitor 'user-9'\n"
        "    request #4 visitors[0].snapshots[0].events[0] 'purchase': no_experiment: visitor "
        "'user-9' has no impression in any experiment: results attribute conversions to "
        "bucketed visitors only; decide (or activate) for this visitor before tracking\n"
    )
    assert main(["results", "--url", sqlite_server.url, "--json", "--visitor-id", "user-9"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["experiments"], body["reasons"]) == ([], {"no_experiment": 1})
    assert main(["results", "--url", sqlite_server.url, "--limit", "0"]) == 2
    assert "answered 400" in capsys.readouterr().err
    assert main(["results", "--url", "http://127.0.0.1:9"]) == 2
    assert "is `logx-mock serve` running?" in capsys.readouterr().err


def test_results_command_on_an_empty_journal(
    sqlite_server: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["results", "--url", sqlite_server.url]) == 0
    assert capsys.readouterr().out == (
        "No experiment has a visitor yet (no accepted impression with ids).\n\n"
        "Every accepted event counted.\n"
    )
