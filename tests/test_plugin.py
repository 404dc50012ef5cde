"""The pytest plugin, run with pytester: fixtures, options, and exact failure texts."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from helpers import DATAFILE, PAYLOADS, run_user_tests

pytest_plugins = ["pytester"]

IMPRESSION = json.loads((PAYLOADS / "python-sdk-decide-impression.json").read_text())

HEADER = f"""
import json, httpx, requests, pytest
IMPRESSION = {IMPRESSION!r}
URL = "https://logx.optimizely.com/v1/events"

def conversion(key="purchase", visitor_id="user-123", **event):
    return {{"account_id": "12001", "visitors": [{{"visitor_id": visitor_id, "snapshots": [
        {{"events": [{{"entity_id": "111095", "key": key, "uuid": "u-" + key + visitor_id,
                      "timestamp": 1767225600123, **event}}]}}]}}]}}
"""


def run(pytester: pytest.Pytester, body: str, *args: str, ini: str = "") -> pytest.RunResult:
    return run_user_tests(pytester, HEADER + body, *args, ini=ini)


def test_entry_point_is_registered_as_logx_mock() -> None:
    (entry,) = [
        e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "logx_mock"
    ]
    assert entry.value == "pytest_plugin.plugin"


def test_disabling_the_plugin_removes_the_fixtures(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_x(logx_mock):\n    pass\n", "-p", "no:logx_mock")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'logx_mock' not found*"])


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("--markers")
    assert (
        "@pytest.mark.logx(strict=False, allow_rejected=False, faults=[], datafile=None, "
        "expect_warnings=[]): options"
    ) in result.stdout.str()


def test_logx_mock_routes_sync_and_async_httpx(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_sync(logx_mock):
    assert httpx.post(URL, json=IMPRESSION).status_code == 204
    assert httpx.post("https://eu.logx.optimizely.com/v1/events",
                      json=conversion()).status_code == 204
    logx_mock.assert_impression(visitor_id="user-123", flag_key="checkout_flow",
                                variation_key="treatment", count=1)
    logx_mock.assert_conversion("purchase", visitor_id="user-123")
    assert [r.client_ip for r in logx_mock.requests] == ["127.0.0.0", "127.0.0.0"]

@pytest.mark.asyncio
async def test_async(logx_mock):
    async with httpx.AsyncClient() as client:
        response = await client.post(URL, json=IMPRESSION)
    assert response.status_code == 204
    assert logx_mock.get_event(kind="impression").uuid == "a68cf1ad-0393-4e18-af87-efe8f01a7c9c"
""",
    )
    result.assert_outcomes(passed=2)


def test_logx_mock_lets_other_traffic_through(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
from mockserver import ThreadedServer

def test_other_host_reaches_the_network(logx_mock):
    with ThreadedServer() as other:
        response = httpx.get(other.url + "/_mock/health")
        assert requests.get(other.url + "/_mock/health").json()["status"] == "ok"
        assert requests.post(other.events_url, data=b"{").status_code == 400
        assert len(other.endpoint.journal.requests()) == 1
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert logx_mock.requests == []

def test_users_own_respx_routes_still_answer(logx_mock, respx_mock):
    respx_mock.get("https://api.example.test/flags").respond(json={"on": True})
    assert httpx.get("https://api.example.test/flags").json() == {"on": True}
    assert httpx.post(URL, json=IMPRESSION).status_code == 204
    assert len(logx_mock.requests) == 1
""",
    )
    result.assert_outcomes(passed=2)


def test_logx_transport_without_patching(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_sync(logx_transport):
    with httpx.Client(transport=logx_transport, base_url="http://anything") as client:
        assert client.post("/v1/events", json=IMPRESSION).status_code == 204
    logx_transport.assert_impression(experiment_id="111127")

@pytest.mark.asyncio
async def test_async(logx_transport):
    async with httpx.AsyncClient(transport=logx_transport) as client:
        response = await client.post(URL, json=conversion("signup"))
    assert response.status_code == 204
    logx_transport.assert_conversion("signup", count=1)

def test_nothing_is_patched(logx_transport):
    with pytest.raises(httpx.ConnectError):
        httpx.post("http://127.0.0.1:9/v1/events", json=IMPRESSION)
""",
    )
    result.assert_outcomes(passed=3)


def test_logx_server_is_shared_and_reset_before_each_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import urllib.request
URLS = []

def test_first(logx_server):
    URLS.append(logx_server.url)
    assert requests.post(logx_server.events_url, json=IMPRESSION).status_code == 204
    assert len(logx_server.events) == 1

def test_second(logx_server):
    URLS.append(logx_server.url)
    assert logx_server.events == []
    data = json.dumps(conversion()).encode()
    req = urllib.request.Request(logx_server.events_url, data=data,
                                 headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(req).status == 204
    assert logx_server.events_url == logx_server.url + "/v1/events"
    logx_server.assert_conversion("purchase")
    assert URLS[0] == URLS[1]
""",
    )
    result.assert_outcomes(passed=2)


def test_get_event_failure_texts(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_none(logx_mock):
    httpx.post(URL, json=IMPRESSION)
    logx_mock.get_event(visitor_id="nobody")

def test_many(logx_mock):
    httpx.post(URL, json=conversion("a"))
    httpx.post(URL, json=conversion("b"))
    logx_mock.get_event(kind="conversion")

def test_bad_filter(logx_mock):
    logx_mock.get_events(visitorId="x")
""",
    )
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Expected exactly one event with visitor_id='nobody', "
            "verdict='accepted', "
            "found none.",
            "E*1 event(s) arrived; the closest:",
            "E*  - impression key='campaign_activated' visitor_id='user-123' "
            "experiment_id='111127' variation_id='111129' flag_key='checkout_flow' "
            "(request #1, accepted)",
            "E*      visitor_id: expected 'nobody', got 'user-123'",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Expected exactly one event with kind='conversion', "
            "verdict='accepted', "
            "found 2:",
            "E*  - conversion key='a' visitor_id='user-123' (request #1, accepted)",
            "E*  - conversion key='b' visitor_id='user-123' (request #2, accepted)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*TypeError: unknown event filter 'visitorId' (did you mean 'visitor_id'?); *",
        ]
    )


def test_assert_impression_and_conversion_near_misses(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_impression(logx_mock):
    httpx.post(URL, json=IMPRESSION)
    logx_mock.assert_impression(flag_key="checkout_flow", variation_key="control")

def test_conversion_count(logx_mock):
    httpx.post(URL, json=conversion("purchase", revenue=100))
    logx_mock.assert_conversion("purchase", revenue=4200, count=1)
""",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Expected at least one impression with kind='impression', "
            "flag_key='checkout_flow', variation_key='control', verdict='accepted', found 0.",
            "E*1 event(s) arrived; the closest:",
            "E*  - impression key='campaign_activated' visitor_id='user-123' *",
            "E*      decision.variation_key: expected 'control', got 'treatment'",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Expected exactly 1 conversion with kind='conversion', "
            "key='purchase', revenue=4200, verdict='accepted', found 0.",
            "E*  - conversion key='purchase' visitor_id='user-123' revenue=100 "
            "(request #1, accepted)",
            "E*      revenue: expected 4200, got 100",
        ]
    )


def test_wait_for_events_timeout_text(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import threading

def test_arrives(logx_server):
    threading.Timer(0.2, lambda: requests.post(logx_server.events_url, json=IMPRESSION)).start()
    (event,) = logx_server.wait_for_events(kind="impression", timeout=10)
    assert event.visitor_id == "user-123"

def test_times_out(logx_server):
    requests.post(logx_server.events_url, json=IMPRESSION)
    logx_server.wait_for_events(count=2, timeout=0.3, kind="impression")
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Waited 0.3s for 2 event(s) with kind='impression', "
            "verdict='accepted', "
            "got 1.",
            "E*1 event(s) arrived; the closest:",
        ]
    )


def test_waits_and_lookups_mean_delivered_events(pytester: pytest.Pytester) -> None:
    """A retry test: the faulted first attempt arrives first, but a wait returns only once
    the event was accepted; lookups default to accepted, and name another verdict to see it."""
    result = run(
        pytester,
        """
import threading, time

def send_with_retry(url, batch):
    for backoff in (0.5, 1.0, 2.0):
        if requests.post(url, json=batch, timeout=5).status_code == 204:
            return
        time.sleep(backoff)

def test_retry(logx_server):
    logx_server.faults.add(status=503, times=1)
    batch = conversion("purchase", "retrier")
    sender = threading.Thread(target=send_with_retry, args=(logx_server.events_url, batch))
    sender.start()
    (event,) = logx_server.wait_for_events(key="purchase", timeout=10)
    sender.join()
    assert event.verdict == "accepted"
    uuid = event.uuid
    assert [a.verdict for a in logx_server.attempts(uuid)] == ["faulted", "accepted"]
    assert logx_server.get_event(key="purchase").verdict == "accepted"
    assert [e.verdict for e in logx_server.get_events(verdict="faulted")] == ["faulted"]
    assert [e.verdict for e in logx_server.get_events(verdict=None)] == ["faulted", "accepted"]

def test_only_a_faulted_arrival(logx_mock):
    logx_mock.faults.add(status=503)
    httpx.post(URL, json=conversion("purchase"))
    logx_mock.wait_for_events(key="purchase", timeout=0.2)
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Waited 0.2s for 1 event(s) with key='purchase', "
            "verdict='accepted', got 0.",
            "E*1 event(s) arrived; the closest:",
            "E*  - conversion key='purchase' visitor_id='user-123' (request #1, faulted)",
            "E*      verdict: expected 'accepted', got 'faulted'",
        ]
    )


def test_teardown_fails_on_rejections_with_the_reasons(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_sends_a_bad_batch(logx_mock):
    bad = dict(IMPRESSION)
    del bad["account_id"]
    assert httpx.post(URL, json=bad).status_code == 204

@pytest.mark.logx(allow_rejected=True)
def test_allowed(logx_mock):
    httpx.post(URL, json={"visitors": []})
    assert logx_mock.requests[0].verdict == "rejected"
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_sends_a_bad_batch*",
            "E*AssertionError: 1 request(s) would be dropped or refused by Optimizely (it "
            "answers a rejected batch 204 and discards it; a wrong path or method is never "
            "delivered):",
            "E*  request #1 (rejected, answered 204):",
            "E*    - account_id: 'account_id' is required ?required?",
            "E*Fix the payloads, or mark the test @pytest.mark.logx(allow_rejected=True) "
            "if sending them is the point.",
        ]
    )


def test_a_failed_test_is_not_masked_and_gets_the_journal(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_fails(logx_server):
    requests.post(logx_server.events_url, json={"visitors": []})
    assert False, "the test's own failure"
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: the test's own failure",
            "*- logx-mock journal -*",
            "1 request(s) reached the mock:",
            "  #* 204 rejected: 0 event(s), 2 error(s), 0 warning(s)",
            "      error account_id: 'account_id' is required ?required?",
        ]
    )
    assert "would be dropped" not in result.stdout.str()


def test_strict_from_ini_and_markers_closest_wins(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        ini="logx_strict = true\nlogx_allow_rejected = true\n",
        body="""
pytestmark = pytest.mark.logx(strict=False)

def test_module_marker_beats_ini(logx_mock):
    assert httpx.post(URL, json={"visitors": []}).status_code == 204

@pytest.mark.logx(strict=True)
class TestStrict:
    def test_class_marker(self, logx_server):
        assert requests.post(logx_server.events_url, json={"visitors": []}).status_code == 400

    @pytest.mark.logx(strict=False)
    def test_test_marker_beats_class(self, logx_transport):
        with httpx.Client(transport=logx_transport) as client:
            assert client.post(URL, json={"visitors": []}).status_code == 204

def test_server_options_do_not_leak(logx_server):
    assert requests.post(logx_server.events_url, json={"visitors": []}).status_code == 204
""",
    )
    result.assert_outcomes(passed=4)


def test_ini_strict_applies_without_markers(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        ini="logx_strict = true\n",
        body="""
@pytest.mark.logx(allow_rejected=True)
def test_strict(logx_mock):
    assert httpx.post(URL, json={"visitors": []}).status_code == 400
""",
    )
    result.assert_outcomes(passed=1)


def test_misspelled_option_fails_at_setup(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.logx(stirct=True)
def test_typo(logx_mock):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*unknown logx option 'stirct' in @pytest.mark.logx; did you mean 'strict'? "
            "(options: strict, allow_rejected, faults, datafile, expect_warnings)*",
        ]
    )


def test_optimizely_sdk_through_the_event_dispatcher(pytester: pytest.Pytester) -> None:
    datafile = DATAFILE.read_text()
    pytester.makefile(".json", datafile=datafile)
    result = run(
        pytester,
        """
from pathlib import Path
from optimizely import optimizely

@pytest.mark.logx(strict=True)
@pytest.mark.parametrize("batch_size", [1, 10])
def test_sdk(logx_server, logx_event_dispatcher, batch_size):
    client = optimizely.Optimizely(Path("datafile.json").read_text(),
                                   event_dispatcher=logx_event_dispatcher,
                                   event_processor_options={"batch_size": batch_size})
    user = client.create_user_context("sdk-user", {"plan": "pro"})
    user.decide("checkout_flow")
    client.activate("checkout_ab", "sdk-user")
    user.track_event("purchase", {"revenue": 999})
    client.close()
    logx_server.wait_for_events(3)
    logx_server.assert_impression(visitor_id="sdk-user", flag_key="checkout_flow")
    logx_server.assert_impression(visitor_id="sdk-user", rule_key="checkout_ab", flag_key="")
    logx_server.assert_conversion("purchase", visitor_id="sdk-user", revenue=999)
    assert len(logx_server.requests) == (3 if batch_size == 1 else 1)
    assert logx_event_dispatcher.dispatched[0] == "https://logx.optimizely.com/v1/events"
""",
    )
    result.assert_outcomes(passed=2)


def test_runs_under_xdist(pytester: pytest.Pytester) -> None:
    body = "".join(
        f"""
def test_{i}(logx_server, logx_mock):
    assert requests.post(logx_server.events_url, json=IMPRESSION).status_code == 204
    assert httpx.post(URL, json=IMPRESSION).status_code == 204
    assert len(logx_server.events) == len(logx_mock.events) == 1
"""
        for i in range(6)
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=HEADER + body)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_faults_from_pytest_for_both_doors(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.logx(faults=[{"status": 503, "times": 1}, "reset,nth=3"])
def test_marker_on_logx_mock(logx_mock):
    assert httpx.post(URL, json=IMPRESSION).status_code == 503
    assert httpx.post(URL, json=conversion("a")).status_code == 204
    with pytest.raises(httpx.ReadError):
        httpx.post(URL, json=conversion("b"))
    assert [r.verdict for r in logx_mock.requests] == ["faulted", "accepted", "faulted"]

def test_inject_on_logx_server(logx_server):
    with logx_server.faults.inject(status=503, times=2):
        codes = [requests.post(logx_server.events_url, json=IMPRESSION).status_code
                 for _ in range(3)]
    assert codes == [503, 503, 204]
    logx_server.faults.add(close=True)
    with pytest.raises(requests.ConnectionError):
        requests.post(logx_server.events_url, json=IMPRESSION)

def test_server_faults_do_not_leak_into_the_next_test(logx_server):
    assert logx_server.faults.describe() == []
    assert requests.post(logx_server.events_url, json=IMPRESSION).status_code == 204

@pytest.mark.logx(faults=["stauts=503"])
def test_bad_fault_option(logx_mock):
    pass
""",
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*logx option faults: unknown fault option 'stauts'*"])
