"""The plugin's `logx_db` ini key: `logx_server` journals into a shared database, so a
suite sees (and resets, and sets faults for) `logx-mock serve` instances running elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import impression, run_user_tests

pytest_plugins = ["pytester"]

USER_TESTS = """
import os, requests
from helpers import impression

ELSEWHERE = os.environ["ELSEWHERE"]  # a `logx-mock serve --db URL` of the suite's app

def test_the_instance_elsewhere_is_journaled_here(logx_server):
    assert logx_server.requests == []  # reset before the test, for every instance
    assert requests.post(ELSEWHERE + "/v1/events", json=impression("far")).status_code == 204
    (record,) = logx_server.requests
    assert record.verdict == "accepted"
    assert [e.visitor_id for e in logx_server.events] == ["far"]

def test_a_fault_set_here_is_answered_there(logx_server):
    logx_server.faults.add(status=503, times=1)
    assert requests.post(ELSEWHERE + "/v1/events", json=impression()).status_code == 503
    assert requests.post(ELSEWHERE + "/v1/events", json=impression()).status_code == 204
    assert [r.verdict for r in logx_server.requests] == ["faulted", "accepted"]
"""


def test_logx_server_shares_the_journal_named_by_logx_db(
    pytester: pytest.Pytester, serve: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = serve("--db", pg_url)
    before = requests.post(elsewhere.events_url, json=impression("earlier"), timeout=10)
    assert before.status_code == 204
    monkeypatch.setenv("ELSEWHERE", elsewhere.url)
    pytester.copy_example(str(Path(__file__).parent / "helpers.py"))
    result = run_user_tests(pytester, USER_TESTS, ini=f"logx_db = {pg_url}\n")
    result.assert_outcomes(passed=2)
    listed = requests.get(elsewhere.url + "/_mock/requests", timeout=10).json()["requests"]
    assert [r["verdict"] for r in listed] == ["faulted", "accepted"]  # the suite's, not 'earlier'


def test_logx_db_takes_a_sqlite_file_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    source = (
        "import requests\n"
        "def test_x(logx_server):\n"
        "    requests.post(logx_server.events_url, data=b'{}')\n"
        "    assert logx_server.journal.__class__.__name__ == 'SqliteJournal'\n"
        "    assert len(logx_server.requests) == 1\n"
    )
    result = run_user_tests(
        pytester, source, ini="logx_db = journals/suite.db\nlogx_allow_rejected = true\n"
    )
    result.assert_outcomes(errors=1)  # the folder does not exist: said so at setup
    result.stdout.fnmatch_lines(["*the logx_db ini key:*journals*"])
    (pytester.path / "journals").mkdir()
    result = run_user_tests(
        pytester, source, ini="logx_db = journals/suite.db\nlogx_allow_rejected = true\n"
    )
    result.assert_outcomes(passed=1)
    assert (pytester.path / "journals" / "suite.db").is_file()


def test_an_unreachable_logx_db_fails_at_setup_without_its_password(
    pytester: pytest.Pytester,
) -> None:
    url = "postgresql://logx:s3cret@127.0.0.1:1/nowhere"  # port 1: nothing listens
    source = "def test_x(logx_server):\n    pass\n"
    result = run_user_tests(pytester, source, ini=f"logx_db = {url}\n")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the logx_db ini key: cannot open the journal*logx:***@*"])
    assert "s3cret" not in result.stdout.str()
