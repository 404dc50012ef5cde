"""Results of real SDK traffic: the Optimizely Python SDK and JavaScript SDK (under Node.js),
driven from the test datafile, against hand-computed tables.

Bucketing is deterministic (MurmurHash of the user id), so each visitor's variation is
asserted from what the SDK itself returned before the table is checked.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from helpers import DATAFILE
from sdk_traffic import Context, Forced, capture
from test_js_sdk import js_batches  # noqa: F401  (the module fixture: the JS SDK's batches)
from test_results import cells, reasons

from pytest_plugin import ServerHandle


def _next_millisecond() -> None:
    """Let the SDK's clock move on, so the next event gets a later timestamp (the SDK rounds
    to the nearest millisecond, so the floor must move by two)."""
    start = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 < start + 2:
        pass


def _drive(client: Any) -> None:
    assert client.activate("checkout_ab", "user-1") == "control"
    client.track("purchase", "user-1", None, {"revenue": 4200})
    user = client.create_user_context("user-2")
    assert user.decide("checkout_flow").variation_key == "treatment"
    user.track_event("purchase", {"revenue": 42.5})  # dollars, not cents
    user.track_event("signup")
    forced = client.create_user_context("user-5")
    forced.set_forced_decision(Context("checkout_flow", "checkout_ab"), Forced("control"))
    assert forced.decide("checkout_flow").variation_key == "control"
    client.set_forced_variation("checkout_ab", "user-6", "treatment")
    assert client.activate("checkout_ab", "user-6") == "treatment"
    client.track("purchase", "user-7")  # before user-7's decision
    _next_millisecond()
    client.set_forced_variation("checkout_ab", "user-7", "control")
    assert client.activate("checkout_ab", "user-7") == "control"
    client.is_feature_enabled("banner", "user-3")  # the "everyone else" rollout rule
    client.track("purchase", "user-8")  # never decided


def _post(server: ServerHandle, batches: list[dict[str, Any]]) -> None:
    for batch in batches:
        response = requests.post(server.events_url, json=batch, timeout=10)
        assert response.status_code == 204, response.text


def _admin_results(server: ServerHandle) -> dict[str, Any]:
    answer = requests.get(server.url + "/_mock/results", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.logx(datafile=DATAFILE)
def test_python_sdk_traffic(logx_server: ServerHandle) -> None:
    batches = capture(DATAFILE.read_text(), _drive)
    _post(logx_server, [*batches, batches[1]])  # the purchase of user-1 arrives twice
    result = _admin_results(logx_server)
    (experiment,) = result["experiments"]
    assert (experiment["experiment_key"], experiment["flag_key"], experiment["rule_type"]) == (
        "checkout_ab",
        "checkout_flow",
        "experiment",  # activate says "experiment"; decide says "feature-test"
    )
    assert cells(result) == {
        # control: user-1, user-5, user-7; user-1 bought for $42.00, once (a duplicate)
        ("checkout_ab", "control", "visitors"): 3,
        ("checkout_ab", "control", "purchase", "unique_conversions"): 1,
        ("checkout_ab", "control", "purchase", "conversions"): 1,
        ("checkout_ab", "control", "purchase", "revenue"): 4200,
        ("checkout_ab", "control", "signup", "unique_conversions"): 0,
        ("checkout_ab", "control", "signup", "conversions"): 0,
        ("checkout_ab", "control", "signup", "revenue"): 0,
        # treatment: user-2 and user-6; user-2's 42.5 is not cents: the SDK drops it
        ("checkout_ab", "treatment", "visitors"): 2,
        ("checkout_ab", "treatment", "purchase", "unique_conversions"): 1,
        ("checkout_ab", "treatment", "purchase", "conversions"): 1,
        ("checkout_ab", "treatment", "purchase", "revenue"): 0,
        ("checkout_ab", "treatment", "signup", "unique_conversions"): 1,
        ("checkout_ab", "treatment", "signup", "conversions"): 1,
        ("checkout_ab", "treatment", "signup", "revenue"): 0,
    }
    assert reasons(result) == [
        ("user-2", "revenue_not_integer", "purchase"),
        ("user-7", "before_impression", "purchase"),
        ("user-3", "no_experiment", "campaign_activated"),  # the rollout has no variation_id
        ("user-8", "no_experiment", "purchase"),
        ("user-1", "duplicate", "purchase"),
    ]
    assert result["counted"] == {"impressions": 5, "conversions": 3}


def test_js_sdk_traffic(js_batches: list[dict[str, Any]], logx_server: ServerHandle) -> None:  # noqa: F811
    _post(logx_server, js_batches)
    result = _admin_results(logx_server)
    (experiment,) = result["experiments"]
    assert (experiment["experiment_key"], experiment["flag_key"], experiment["rule_type"]) == (
        "checkout_ab",
        "checkout_flow",
        "feature-test",
    )
    # js-user-1 decided control then bought ($42.00); js-user-3 was activated into treatment,
    # then signed up and bought for 100 cents under a unicode event key.
    none = {"unique_conversions": 0, "conversions": 0, "revenue": 0}
    assert [(v["variation_key"], v["visitors"], v["events"]) for v in experiment["variations"]] == [
        (
            "control",
            1,
            [
                {"key": "kauf_€_ünï", **none},
                {"key": "purchase", "unique_conversions": 1, "conversions": 1, "revenue": 4200},
                {"key": "signup", **none},
            ],
        ),
        (
            "treatment",
            1,
            [
                {"key": "kauf_€_ünï", "unique_conversions": 1, "conversions": 1, "revenue": 100},
                {"key": "purchase", **none},
                {"key": "signup", "unique_conversions": 1, "conversions": 1, "revenue": 0},
            ],
        ),
    ]
    # The "everyone else" rollout and the no-decision flag send no variation_id; a forced
    # decision for a whole flag sends no experiment_id: none of them counts anywhere.
    assert reasons(result) == [
        ("js-user-1", "no_experiment", "campaign_activated"),
        ("js-user-1", "no_experiment", "campaign_activated"),
        ("js-user-2", "no_experiment", "campaign_activated"),
    ]
    assert json.dumps(result, ensure_ascii=False).count("kauf_€_ünï") == 2
