"""handle.results() and handle.assert_results(), run with pytester: exact failure texts."""

from __future__ import annotations

import pytest
from test_plugin import run

pytest_plugins = ["pytester"]

TRAFFIC = """
def send():
    httpx.post(URL, json=IMPRESSION)  # user-123 in checkout_ab / treatment
    httpx.post(URL, json=conversion(revenue=4200))
    httpx.post(URL, json=conversion(revenue=4200))  # the same uuid again: a duplicate
    httpx.post(URL, json=conversion(visitor_id="user-9"))  # in no experiment
"""


def run_with_traffic(pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    """Run the user's `tests`, which may call `send()` for the traffic above."""
    return run(pytester, TRAFFIC + tests)


def test_results_has_the_admin_api_structure(pytester: pytest.Pytester) -> None:
    result = run_with_traffic(
        pytester,
        """
def test_it(logx_mock):
    send()
    results = logx_mock.results()
    assert sorted(results) == ["counted", "experiments", "experiments_left_off", "last_id",
                               "left_off", "reasons", "truncated", "uncounted"]
    (experiment,) = results["experiments"]
    assert experiment["experiment_key"] == "checkout_ab"
    (variation,) = experiment["variations"]
    assert (variation["variation_key"], variation["visitors"]) == ("treatment", 1)
    assert variation["events"] == [
        {"key": "purchase", "unique_conversions": 1, "conversions": 1, "revenue": 4200}]
    assert results["reasons"] == {"duplicate": 1, "no_experiment": 1}
    assert logx_mock.results(visitor_id="user-9")["experiments"] == []
    assert logx_mock.results(end=1767225600123)["counted"] == {"impressions": 0, "conversions": 0}
    logx_mock.assert_results("checkout_ab", "treatment", visitors=1)
    logx_mock.assert_results("111127", "111129", event="purchase", conversions=1, revenue=4200,
                             unique_conversions=1)
""",
    )
    result.assert_outcomes(passed=1)


def test_a_wrong_number_shows_the_row_and_what_did_not_count(pytester: pytest.Pytester) -> None:
    result = run_with_traffic(
        pytester,
        """
def test_it(logx_mock):
    send()
    logx_mock.assert_results("checkout_ab", "treatment", event="purchase", conversions=2,
                             revenue=4200)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Results for experiment 'checkout_ab', variation 'treatment', "
            "event 'purchase': expected conversions=2 (got 1).",
            "E *checkout_ab / treatment: 1 visitor(s); purchase: 1 unique, 1 conversion(s), "
            "revenue 4200",
            "E *did not count:",
            "E *- visitor 'user-123' 'purchase' (request #3): duplicate: uuid "
            "'u-purchaseuser-123' arrived before (request #2): Optimizely counts each uuid "
            "once; give every event its own uuid",
            "E *- visitor 'user-9' 'purchase' (request #4): no_experiment: visitor 'user-9' "
            "has no impression in any experiment: results attribute conversions to bucketed "
            "visitors only; decide (or activate) for this visitor before tracking",
        ]
    )


def test_a_wrong_name_says_what_is_there(pytester: pytest.Pytester) -> None:
    result = run_with_traffic(
        pytester,
        """
def test_experiment(logx_mock):
    send()
    logx_mock.assert_results("checkout_abc", "treatment", visitors=1)

def test_variation(logx_mock):
    send()
    logx_mock.assert_results("checkout_ab", "control", visitors=1)

def test_event(logx_mock):
    send()
    logx_mock.assert_results("checkout_ab", "treatment", event="purchse", conversions=1)

def test_no_number(logx_mock):
    logx_mock.assert_results("checkout_ab", "treatment", event="purchase")

def test_number_without_event(logx_mock):
    logx_mock.assert_results("checkout_ab", "treatment", conversions=1)
""",
    )
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Results for experiment 'checkout_abc', variation 'treatment': "
            "no experiment 'checkout_abc' in the results (did you mean 'checkout_ab'?); "
            "experiments: 'checkout_ab' (111127).",
            "E*AssertionError: Results for experiment 'checkout_ab', variation 'control': "
            "no variation 'control' in the results; variations: 'treatment' (111129).",
            "E*AssertionError: Results for experiment 'checkout_ab', variation 'treatment', "
            "event 'purchse': no conversion 'purchse' from this experiment's visitors; "
            "events: 'purchase'",
            "E *checkout_ab / treatment: 1 visitor(s); purchase: 1 unique, 1 conversion(s), "
            "revenue 4200",
            "E*TypeError: assert_results needs a number to check: visitors=, "
            "unique_conversions=, conversions= or revenue=",
            "E*TypeError: unique_conversions, conversions and revenue belong to an event: "
            "pass event='purchase' (the conversion's key)",
        ]
    )
