"""`logx_mock` catches the real Optimizely Python SDK as it is: its default dispatcher
(`requests`), its default BatchEventProcessor, its datafile fetch in `sdk_key` mode; and
`requests`/httpx traffic to every Optimizely host, beside a user's own `responses`."""

from __future__ import annotations

import shutil

import pytest
from helpers import DATAFILE, run_user_tests

pytest_plugins = ["pytester"]

KEY = "logx-mock-test"  # the sdkKey of helpers.DATAFILE

HEADER = """
import json, logging
import httpx, pytest, requests, responses
from optimizely import optimizely
from optimizely.config_manager import PollingConfigManager

KEY = "logx-mock-test"
CDN = f"https://cdn.optimizely.com/datafiles/{KEY}.json"
"""


def run(pytester: pytest.Pytester, body: str, *args: str, ini: str = "") -> pytest.RunResult:
    shutil.copy(DATAFILE, pytester.path / "datafile.json")
    return run_user_tests(pytester, HEADER + body, *args, ini=ini)


def test_the_sdk_as_documented_with_a_datafile(pytester: pytest.Pytester) -> None:
    """Default dispatcher, default event processor (a BatchEventProcessor of batch size 1,
    flushed from its own thread): impressions and conversions are caught."""
    result = run(
        pytester,
        """
def test_sdk(logx_mock):
    datafile = open("datafile.json").read()
    client = optimizely.Optimizely(datafile)
    assert type(client.event_processor).__name__ == "BatchEventProcessor"
    user = client.create_user_context("user-1", {"plan": "pro"})
    decision = user.decide("checkout_flow")
    user.track_event("purchase", {"revenue": 4200})
    client.activate("checkout_ab", "user-2")
    client.track("signup", "user-2")
    client.close()
    logx_mock.assert_impression(visitor_id="user-1", flag_key="checkout_flow",
                                variation_key=decision.variation_key)
    logx_mock.assert_impression(visitor_id="user-2", experiment_key="checkout_ab")
    logx_mock.assert_conversion("purchase", visitor_id="user-1", revenue=4200)
    logx_mock.assert_conversion("signup", visitor_id="user-2")
    assert len(logx_mock.requests) == 4  # batch size 1: one request per event
    assert {r.host for r in logx_mock.requests} == {"logx.optimizely.com"}
    assert {r.strict for r in logx_mock.requests} == {False}
    ua = dict(logx_mock.requests[0].headers)["user-agent"]
    assert ua.startswith("python-requests/")
""",
    )
    result.assert_outcomes(passed=1)


def test_the_sdk_waits_for_no_close(pytester: pytest.Pytester) -> None:
    """Without close(), the processor's thread sends on its own: wait_for_events sees it."""
    result = run(
        pytester,
        """
def test_sdk(logx_mock):
    client = optimizely.Optimizely(open("datafile.json").read())
    client.track("purchase", "user-3")
    logx_mock.wait_for_events(key="purchase", visitor_id="user-3")
    client.close()
""",
    )
    result.assert_outcomes(passed=1)


def test_a_larger_batch_is_one_request(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_sdk(logx_mock):
    client = optimizely.Optimizely(open("datafile.json").read(),
                                   event_processor_options={"batch_size": 10})
    for visitor in ("a", "b", "c"):
        client.track("purchase", visitor)
    client.close()  # flushes the batch
    (request,) = logx_mock.requests
    assert [e.visitor_id for e in request.events] == ["a", "b", "c"]
    logx_mock.assert_conversion("purchase", count=3)
""",
    )
    result.assert_outcomes(passed=1)


def test_an_eu_project_sends_to_the_eu_host(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_sdk(logx_mock):
    datafile = json.load(open("datafile.json"))
    client = optimizely.Optimizely(json.dumps({**datafile, "region": "EU"}))
    client.track("purchase", "eu-user")
    client.close()
    (request,) = logx_mock.requests
    assert request.host == "eu.logx.optimizely.com"
    logx_mock.assert_conversion("purchase", visitor_id="eu-user")
""",
    )
    result.assert_outcomes(passed=1)


SDK_KEY_TEST = """
def test_sdk(logx_mock):
    client = optimizely.Optimizely(sdk_key=KEY)
    user = client.create_user_context("user-4")
    assert user.decide("checkout_flow").flag_key == "checkout_flow"
    user.track_event("purchase")
    client.close()
    logx_mock.assert_conversion("purchase", visitor_id="user-4")
    assert client.config_manager.get_config().revision == "42"
"""


def test_sdk_key_mode_gets_the_datafile_from_the_ini(pytester: pytest.Pytester) -> None:
    result = run(pytester, SDK_KEY_TEST, ini="logx_datafile = datafile.json")
    result.assert_outcomes(passed=1)


def test_sdk_key_mode_gets_the_datafile_from_the_marker(pytester: pytest.Pytester) -> None:
    body = SDK_KEY_TEST.replace(
        "def test_sdk", '@pytest.mark.logx(datafile="datafile.json")\ndef test_sdk'
    )
    run(pytester, body).assert_outcomes(passed=1)


def test_the_datafile_fetch_as_the_sdk_does_it(pytester: pytest.Pytester) -> None:
    """The authenticated datafile, polling answered 304, and an unknown key's 403, each as
    the SDK's own config managers see them."""
    result = run(
        pytester,
        """
def test_access_token(logx_mock):
    client = optimizely.Optimizely(sdk_key=KEY, datafile_access_token="any-token")
    manager = client.config_manager
    assert type(manager).__name__ == "AuthDatafilePollingConfigManager"
    assert manager.datafile_url == f"https://config.optimizely.com/datafiles/auth/{KEY}.json"
    assert manager.get_config().revision == "42"
    client.close()

def test_polls_and_gets_304(logx_mock, caplog):
    caplog.set_level(logging.DEBUG)
    client = optimizely.Optimizely(sdk_key=KEY, logger=logging.getLogger("sdk"))
    manager = client.config_manager
    config = manager.get_config()
    stamp = manager.last_modified
    assert stamp and requests.get(CDN).headers["last-modified"] == stamp
    manager.fetch_datafile()  # what the polling thread does every update_interval
    assert manager.get_config() is config
    assert f"Not updating config as datafile has not updated since {stamp}." in caplog.text
    client.close()

def test_unknown_key_gets_403(logx_mock, caplog):
    manager = PollingConfigManager(sdk_key="nope", blocking_timeout=1,
                                   logger=logging.getLogger("sdk"))
    client = optimizely.Optimizely(config_manager=manager)
    assert client.config_manager.get_config() is None
    client.close()
    url = "https://cdn.optimizely.com/datafiles/nope.json"
    assert (f"Fetching datafile from {url} failed. Error: 403 Client Error: Forbidden for "
            f"url: {url}") in caplog.text
    (warned,) = [r for r in caplog.records if r.name == "logx_mock"]
    assert warned.levelno == logging.WARNING  # shown in a failing test's captured log
    assert warned.getMessage().startswith(
        "GET /datafiles/nope.json 403: no datafile with sdkKey 'nope' is loaded (served: "
        "'logx-mock-test'); give the datafile to logx-mock (pytest: logx(datafile=...)")
    response = requests.get(url)
    assert response.status_code == 403
    assert response.json()["detail"].startswith(
        "no datafile with sdkKey 'nope' is loaded (served: 'logx-mock-test'); give the "
        "datafile to logx-mock")
""",
        ini="logx_datafile = datafile.json",
    )
    result.assert_outcomes(passed=3)


def test_a_mistyped_sdk_key_fails_with_the_keys_served_in_the_report(
    pytester: pytest.Pytester,
) -> None:
    """A newcomer's first trip: the SDK asks for a key no datafile has. It logs only "403";
    the failure report shows logx-mock's warning naming the keys served, and says that
    datafile fetches are not journaled."""
    result = run(
        pytester,
        """
def test_sdk(logx_mock):
    manager = PollingConfigManager(sdk_key="my-real-key", blocking_timeout=1)
    client = optimizely.Optimizely(config_manager=manager)
    variation = client.activate("checkout_ab", "user-1")
    client.close()
    assert variation == "treatment"
""",
        ini="logx_datafile = datafile.json",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- Captured log call -*",
            "WARNING  logx_mock:cdn.py:* GET /datafiles/my-real-key.json 403: no datafile with "
            "sdkKey 'my-real-key' is loaded (served: 'logx-mock-test'); give the datafile to "
            "logx-mock (pytest: logx(datafile=...) or the logx_datafile ini key; *",
            "*- logx-mock journal -*",
            "The journal is empty: no event batch reached the mock (datafile fetches are not "
            "journaled; an unknown sdk_key is a logx_mock warning in the captured log).",
        ]
    )


def test_every_optimizely_host_through_requests_and_httpx(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
BOT = {"entity_id": "$opt_bot_filtering", "type": "custom", "value": True}
BATCH = {"account_id": "12001", "visitors": [{"visitor_id": "v", "attributes": [BOT],
    "snapshots": [{"events": [
        {"entity_id": "111095", "key": "purchase", "uuid": "u-1", "timestamp": 1767225600123}
    ]}]}]}
AUTH = f"https://config.optimizely.com/datafiles/auth/{KEY}.json"

def test_sync(logx_mock):
    expected = open("datafile.json", "rb").read()
    assert requests.get(CDN).content == expected
    assert requests.get(AUTH, headers={"Authorization": "Bearer t"}).content == expected
    assert httpx.get(CDN).content == expected
    for host in ("logx.optimizely.com", "eu.logx.optimizely.com"):
        response = requests.post(f"https://{host}/v1/events", json=BATCH)
        assert response.status_code == 204
        assert httpx.post(f"https://{host}/v1/events", json=BATCH).status_code == 204
    assert [(r.host, r.verdict) for r in logx_mock.requests] == [
        ("logx.optimizely.com", "accepted"), ("logx.optimizely.com", "accepted"),
        ("eu.logx.optimizely.com", "accepted"), ("eu.logx.optimizely.com", "accepted")]
    agents = [dict(r.headers)["user-agent"].split("/")[0] for r in logx_mock.requests]
    assert agents == ["python-requests", "python-httpx"] * 2

@pytest.mark.asyncio
async def test_async(logx_mock):
    async with httpx.AsyncClient() as client:
        response = await client.get(AUTH, headers={"Authorization": "Bearer t"})
        assert (await client.get(CDN)).status_code == 200
        for host in ("logx.optimizely.com", "eu.logx.optimizely.com"):
            sent = await client.post(f"https://{host}/v1/events", json=BATCH)
            assert sent.status_code == 204
    assert response.json()["revision"] == "42"
    assert [(r.host, r.verdict) for r in logx_mock.requests] == [
        ("logx.optimizely.com", "accepted"), ("eu.logx.optimizely.com", "accepted")]
""",
        ini="logx_datafile = datafile.json",
    )
    result.assert_outcomes(passed=2)


def test_the_requests_door_journals_what_the_wire_would(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_wire(logx_mock):
    requests.post("https://logx.optimizely.com/v1/events", data="not json",
                  headers={"X-Optimizely-Strict": b"true"})  # bytes values are sent as is
    (record,) = logx_mock.requests
    assert (record.verdict, record.status, record.raw) == ("malformed", 400, b"not json")
    assert (record.strict, record.strict_header) == (True, "true")
    headers = dict(record.headers)
    assert list(headers)[0] == "host" and headers["host"] == "logx.optimizely.com"
    assert headers["content-length"] == "8"
    assert record.client_ip == "127.0.0.0"
    logx_mock.reset()
""",
    )
    result.assert_outcomes(passed=1)


def test_faults_render_on_the_requests_door_for_the_sdk(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.logx(faults=[{"reset": True}])
def test_sdk(logx_mock, caplog):
    client = optimizely.Optimizely(open("datafile.json").read())
    client.track("purchase", "user-5")
    client.close()
    (attempt,) = logx_mock.attempts(logx_mock.events[0].uuid)
    assert (attempt.verdict, attempt.status) == ("faulted", 0)
    assert ("Dispatch event failed. Error: ('Connection aborted.', "
            "ConnectionResetError(104, 'Connection reset by peer'))") in caplog.text
""",
    )
    result.assert_outcomes(passed=1)


def test_a_users_responses_mock_keeps_answering_other_hosts(pytester: pytest.Pytester) -> None:
    """A user's RequestsMock started before logx_mock answers what it was given; the
    Optimizely hosts still reach logx-mock."""
    result = run(
        pytester,
        """
@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        mock.get("https://api.example.test/flags", json={"on": True})
        yield mock

def test_both(api, logx_mock):
    assert requests.get("https://api.example.test/flags").json() == {"on": True}
    client = optimizely.Optimizely(open("datafile.json").read())
    client.track("purchase", "user-6")
    client.close()
    logx_mock.assert_conversion("purchase", visitor_id="user-6")
    assert len(api.calls) == 1  # the SDK's request never reached the user's mock
""",
    )
    result.assert_outcomes(passed=1)


def test_responses_activate_inside_the_test_takes_the_logx_routes(
    pytester: pytest.Pytester,
) -> None:
    """A responses mock started in the test answers every requests call while it runs;
    add_logx_routes gives it the Optimizely hosts; without them the SDK is refused."""
    result = run(
        pytester,
        """
from pytest_plugin import add_logx_routes

@responses.activate
def test_routed(logx_mock):
    add_logx_routes(responses.mock, logx_mock.endpoint)
    responses.get("https://api.example.test/flags", json={"on": True})
    assert requests.get("https://api.example.test/flags").json() == {"on": True}
    client = optimizely.Optimizely(open("datafile.json").read())
    client.track("purchase", "user-7")
    client.close()
    logx_mock.assert_conversion("purchase", visitor_id="user-7")

@responses.activate
def test_not_routed(logx_mock, caplog):
    client = optimizely.Optimizely(open("datafile.json").read())
    client.track("purchase", "user-8")
    client.close()
    assert logx_mock.requests == []
    assert "Connection refused by Responses" in caplog.text
""",
    )
    result.assert_outcomes(passed=2)


def test_the_routes_end_with_the_fixture(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import requests.adapters

def test_inside(logx_mock):
    assert requests.adapters.HTTPAdapter.send is not ORIGINAL

def test_after():
    assert requests.adapters.HTTPAdapter.send is ORIGINAL

ORIGINAL = requests.adapters.HTTPAdapter.send
""",
    )
    result.assert_outcomes(passed=2)


def test_logx_server_serves_the_datafile_to_a_url_template(pytester: pytest.Pytester) -> None:
    """The live-server way: the SDK's url_template and logx_event_dispatcher point at it."""
    result = run(
        pytester,
        """
def test_sdk(logx_server, logx_event_dispatcher):
    manager = PollingConfigManager(
        sdk_key=KEY, url_template=logx_server.url + "/datafiles/{sdk_key}.json")
    client = optimizely.Optimizely(config_manager=manager, event_dispatcher=logx_event_dispatcher)
    client.track("purchase", "user-9")
    client.close()
    logx_server.wait_for_events(key="purchase")
    logx_server.assert_conversion("purchase", visitor_id="user-9")
""",
        ini="logx_datafile = datafile.json",
    )
    result.assert_outcomes(passed=1)
