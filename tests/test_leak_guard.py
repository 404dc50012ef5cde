"""The leak guard: while `logx_mock` is active, urllib, aiohttp and raw sockets cannot
reach the Optimizely hosts; they fail at once, before any DNS lookup, saying what to do."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest
from helpers import DATAFILE, run_user_tests

from pytest_plugin import LeakError, leak_guard

pytest_plugins = ["pytester"]

MESSAGE = (
    "logx-mock stopped a connection to logx.optimizely.com before any DNS lookup: logx_mock "
    "answers requests and httpx in this process, and this client is neither (urllib, aiohttp, "
    "a raw socket, ...), so it would have reached the real Optimizely. Use the logx_server "
    "fixture and point the client at it: logx_server.events_url for events, "
    "logx_server.url + '/datafiles/{sdk_key}.json' for datafiles. To let such connections "
    "through, run pytest with --no-logx-leak-guard or set logx_leak_guard = false in the ini "
    "file (README: #the-leak-guard)."
)

# Every lookup is recorded in `LOOKUPS`; none reaches a real resolver (a name that is not
# local fails as an unknown name would), so a test can tell whether one was attempted.
HEADER = f"""
import _socket, asyncio, socket, urllib.request
import aiohttp, pytest
from pytest_plugin import LeakError

MESSAGE = {MESSAGE!r}
URL = "https://logx.optimizely.com/v1/events"
LOOKUPS = []
_real = _socket.getaddrinfo

@pytest.fixture(autouse=True)
def dns(monkeypatch):
    def spy(host, *args, **kwargs):
        LOOKUPS.append(host)
        if host in ("localhost", "127.0.0.1"):
            return _real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(_socket, "getaddrinfo", spy)
    LOOKUPS.clear()
"""


def run(pytester: pytest.Pytester, body: str, *args: str, ini: str = "") -> pytest.RunResult:
    return run_user_tests(pytester, HEADER + body, *args, ini=ini)


def test_urllib_fails_at_once_with_the_way_out_and_no_lookup(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_urllib(logx_mock):
    with pytest.raises(LeakError) as info:
        urllib.request.urlopen(URL, data=b"{}", timeout=5)
    assert str(info.value) == MESSAGE
    assert LOOKUPS == []
    assert logx_mock.requests == []
""",
    )
    result.assert_outcomes(passed=1)


def test_aiohttp_fails_at_once_with_no_lookup(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.asyncio
async def test_aiohttp(logx_mock):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(LeakError, match="logx-mock stopped a connection to eu.logx"):
            await session.post("https://eu.logx.optimizely.com/v1/events", json={})
    assert LOOKUPS == []
""",
    )
    result.assert_outcomes(passed=1)


def test_raw_sockets_fail_at_once_with_no_lookup(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.parametrize("attempt", [
    lambda: socket.create_connection(("logx.optimizely.com", 443), timeout=5),
    lambda: socket.getaddrinfo("LOGX.optimizely.com.", 443),
    lambda: socket.gethostbyname("cdn.optimizely.com"),
    lambda: socket.gethostbyname_ex("config.optimizely.com"),
    lambda: socket.socket().connect(("eu.logx.optimizely.com", 443)),
    lambda: socket.socket().connect_ex((b"logx.optimizely.com", 80)),
    lambda: asyncio.run(asyncio.open_connection("logx.optimizely.com", 443)),
], ids=["create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "connect",
        "connect_ex", "asyncio"])
def test_raw(logx_mock, attempt):
    with pytest.raises(LeakError, match="before any DNS lookup"):
        attempt()
    assert LOOKUPS == []

def test_other_hosts_resolve_and_connect(logx_mock, logx_server):
    with socket.create_connection(("localhost", int(logx_server.url.rsplit(":", 1)[1]))):
        pass
    assert LOOKUPS == ["localhost"]
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.invalid", 443)
""",
    )
    result.assert_outcomes(passed=8)


GUARD_OFF = """
def test_reaches_the_resolver(logx_mock):
    with pytest.raises(urllib.error.URLError, match="Name or service not known"):
        urllib.request.urlopen(URL, data=b"{}", timeout=5)
    assert LOOKUPS == ["logx.optimizely.com"]
"""


def test_the_ini_key_turns_the_guard_off(pytester: pytest.Pytester) -> None:
    result = run(pytester, GUARD_OFF, ini="logx_leak_guard = false")
    result.assert_outcomes(passed=1)


def test_the_command_line_option_turns_the_guard_off(pytester: pytest.Pytester) -> None:
    result = run(pytester, GUARD_OFF, "--no-logx-leak-guard")
    result.assert_outcomes(passed=1)


def test_the_guard_is_on_only_while_logx_mock_is(pytester: pytest.Pytester) -> None:
    result = run(pytester, GUARD_OFF.replace("(logx_mock)", "(logx_server)"))
    result.assert_outcomes(passed=1)


def test_a_leak_fails_the_test_with_the_message(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_leaks(logx_mock):
    urllib.request.urlopen(URL, data=b"{}", timeout=5)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * pytest_plugin.leak_guard.LeakError: logx-mock stopped a connection to "
            "logx.optimizely.com before any DNS lookup: *(README: #the-leak-guard).",
            "*/socket.py:*: LeakError",
        ]
    )


def test_the_option_is_documented_in_help(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*--no-logx-leak-guard*turn logx_mock's leak guard off*", "*logx_leak_guard (bool)*"]
    )


def test_leak_error_is_in_the_one_tree_and_no_os_error() -> None:
    from mockserver.errors import LogxMockError

    assert issubclass(LeakError, LogxMockError) and issubclass(LeakError, RuntimeError)
    assert not issubclass(LeakError, OSError)  # urllib/aiohttp/requests would wrap or retry it


def test_leak_guard_restores_every_function() -> None:
    before = (socket.getaddrinfo, socket.gethostbyname, socket.socket.connect)
    with leak_guard(), pytest.raises(LeakError):
        socket.getaddrinfo("logx.optimizely.com", 443)
    assert (socket.getaddrinfo, socket.gethostbyname, socket.socket.connect) == before
    assert socket.getaddrinfo("127.0.0.1", 80)


LATE = """
import threading, requests
GO, DONE, RESULT = threading.Event(), threading.Event(), []

def send_later():
    GO.wait(10)
    try:
        requests.post(URL, json={}, timeout=5)
    except Exception as error:
        RESULT.append(error)
    DONE.set()

def test_starts_a_sender(logx_mock):
    threading.Thread(target=send_later, name="late-sender", daemon=True).start()

def test_later():
    GO.set()
    assert DONE.wait(10)
    (error,) = RESULT
    assert isinstance(error, LeakError), repr(error)
    assert str(error).startswith(
        "logx-mock stopped a connection to logx.optimizely.com before any DNS lookup: thread "
        "'late-sender' was started by test_user.py::test_starts_a_sender, which used logx_mock, "
        "and it outlived the test: logx_mock ended with the test, so this would have reached "
        "the real Optimizely. The Optimizely SDK sends from its own thread: before the test "
        "ends, call optimizely_client.close() (it flushes the events) or "
        "logx_mock.wait_for_events(...). To let such connections through, run pytest with "
        "--no-logx-leak-guard")
    assert LOOKUPS == []
    # Only that thread is refused: this one reaches the resolver as without logx-mock.
    with pytest.raises(urllib.error.URLError, match="Name or service not known"):
        urllib.request.urlopen(URL, data=b"{}", timeout=5)
    assert LOOKUPS == ["logx.optimizely.com"]
"""


def test_a_thread_that_outlives_its_test_is_refused_and_listed(pytester: pytest.Pytester) -> None:
    result = run(pytester, LATE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= logx-mock leak guard =*",
            "1 connection(s) to Optimizely stopped after their test ended: the Optimizely SDK "
            "sends from its own thread; close the client (it flushes) or call "
            "logx_mock.wait_for_events(...) before the test ends",
            "  test_user.py::test_starts_a_sender: thread 'late-sender' tried to reach "
            "logx.optimizely.com after the test ended",
        ]
    )


def test_with_the_guard_off_a_late_thread_reaches_the_resolver(pytester: pytest.Pytester) -> None:
    late = LATE.split("    assert isinstance(error, LeakError)")[0]
    late += (
        "    assert isinstance(error, requests.ConnectionError), repr(error)\n"
        "    assert LOOKUPS == ['logx.optimizely.com']\n"
    )
    result = run(pytester, late, "--no-logx-leak-guard")
    result.assert_outcomes(passed=2)
    assert "logx-mock leak guard" not in result.stdout.str()


def test_the_sdk_left_open_sends_nothing_to_optimizely_after_its_test(
    pytester: pytest.Pytester,
) -> None:
    """The newcomer's slip: the SDK neither closed nor waited for. With a flush interval its
    event leaves a second after the test ended; it never reaches a resolver.

    The run is in this process, so the client's datafile polling (every 5 minutes) is stopped
    once the slip is seen: left running, its next fetch met the guard minutes later, in
    whichever test of this worker ran then (a warning in the suite's summary)."""
    shutil.copy(DATAFILE, pytester.path / "datafile.json")
    polling_before = {t for t in threading.enumerate() if t.name == "PollThread"}
    result = run(
        pytester,
        """
import time
from optimizely import optimizely

CLIENTS = []

def test_tracks_and_forgets(logx_mock):
    client = optimizely.Optimizely(
        sdk_key="logx-mock-test", event_processor_options={"batch_size": 10, "flush_interval": 1}
    )
    CLIENTS.append(client)
    client.track("purchase", "user-1")

def test_later():
    time.sleep(3)
    assert LOOKUPS == []
    CLIENTS[0].config_manager.stop()  # the datafile polling only: the slip is the events
""",
        ini="logx_datafile = datafile.json",
    )
    result.assert_outcomes(passed=2)
    for thread in {t for t in threading.enumerate() if t.name == "PollThread"} - polling_before:
        thread.join(timeout=10)  # stopped: it ends at once (the SDK itself waits only 0.2 s)
        assert not thread.is_alive()  # no SDK thread of the run outlives it
    result.stdout.fnmatch_lines(
        [
            "*= logx-mock leak guard =*",
            "*",
            "  test_user.py::test_tracks_and_forgets: thread 'EventThread' tried to reach "
            "logx.optimizely.com after the test ended",
        ]
    )
