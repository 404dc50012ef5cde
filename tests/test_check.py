"""`logx-mock check`: the CI verdict, its exit codes, its summary, and its JUnit report as a
JUnit consumer (junitparser) reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import impression
from journal_traffic import fill
from junitparser import Failure, JUnitXml

from mockserver import Endpoint, SqliteJournal, ThreadedServer
from mockserver.export.check import DEFAULT_FAIL_ON
from mockserver.serve.cli import main


@pytest.fixture(scope="module")
def filled() -> Any:
    with ThreadedServer() as server:
        fill(server)
        yield server


def cases(path: Path) -> dict[str, Any]:
    """name -> (classname, [failure]) of every test case, as a CI system reads them."""
    (suite,) = list(JUnitXml.fromfile(str(path)))
    return {case.name: (case.classname, list(case.result)) for case in suite}


def test_the_default_fails_on_what_production_drops_or_refuses() -> None:
    assert set(DEFAULT_FAIL_ON) >= {"rejected", "malformed", "too_large"}
    assert "faulted" not in DEFAULT_FAIL_ON and "warnings" not in DEFAULT_FAIL_ON


def test_a_clean_journal_passes_with_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedServer() as server:
        for visitor in ("a", "b"):
            requests.post(server.events_url, json=impression(visitor), timeout=10)
        assert main(["check", "--url", server.url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"logx-mock check: 2 request(s) (ids 1 to 2) in {server.url}"
    assert "PASSED: no request is rejected, malformed, too_large" in out


def test_failures_exit_1_with_a_junit_report_a_consumer_reads(
    filled: ThreadedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "logx.xml"
    assert main(["check", "--url", filled.url, "--junit", str(report)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 6 of 14 request(s) are rejected, malformed, too_large" in out
    assert len(out.splitlines()) < 40  # one screen
    xml = JUnitXml.fromfile(str(report))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.errors) == (14, 6, 0)
    found = cases(report)
    assert len(found) == 14
    classname, result = found["#1 python-sdk 5.7.0, visitor alice: campaign_activated"]
    assert classname == "logx-mock.python-sdk" and result == []
    _, (failure,) = found["#6 python-sdk 5.7.0, visitor carol: campaign_activated"]
    assert isinstance(failure, Failure) and failure.type == "rejected"
    assert failure.text == "error   account_id: 'account_id' must be a string, got integer [type]"
    _, (strict,) = found["#7 unknown client: rejected, no events"]
    assert strict.text.splitlines() == [
        "error   account_id: 'account_id' is required [required]",
        "error   visitors: 'visitors' is empty: there is nothing to record [empty]",
    ]
    assert strict.message.endswith("(and 1 more)")
    # A lone surrogate (a valid JSON escape) cannot be XML: it is shown as U+FFFD.
    assert "#12 python-sdk 5.7.0, visitor \ufffd-eve: campaign_activated" in found
    failed = {name for name, (_, result) in found.items() if result}
    assert failed == {
        "#6 python-sdk 5.7.0, visitor carol: campaign_activated",
        "#7 unknown client: rejected, no events",
        "#8 unknown client: malformed, no events",
        "#9 unknown client: malformed, no events",
        "#10 unknown client: malformed, no events",
        "#13 unknown client: too_large, no events",
    }


def test_fail_on_warnings_and_faults_and_since(
    filled: ThreadedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "w.xml"
    assert (
        main(["check", "--url", filled.url, "--fail-on", "warnings", "--junit", str(report)]) == 1
    )
    failed = {name: result for name, (_, result) in cases(report).items() if result}
    assert sorted(failed) == [
        "#4 python-sdk 5.7.0, visitor dup-visitor: campaign_activated",
        "#5 python-sdk 5.7.0, visitor bob: signup",
    ]
    (duplicate,) = failed["#4 python-sdk 5.7.0, visitor dup-visitor: campaign_activated"]
    assert duplicate.type == "warnings" and "[duplicate_event]" in duplicate.text
    assert "visitors[0].snapshots[0].events[0].uuid" in duplicate.text
    capsys.readouterr()
    assert main(["check", "--url", filled.url, "--fail-on", "faulted"]) == 1
    assert "fault injected by rule #1 (status)" in capsys.readouterr().out
    assert main(["check", "--url", filled.url, "--since", "13", "--fail-on", "malformed"]) == 0
    assert "1 request(s) (ids 14 to 14)" in capsys.readouterr().out


def test_check_reads_a_journal_file_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    journal = SqliteJournal(db)
    with ThreadedServer(Endpoint(journal)) as server:
        fill(server)
        url_report, db_report = tmp_path / "u.xml", tmp_path / "d.xml"
        assert main(["check", "--url", server.url, "--junit", str(url_report)]) == 1
        assert main(["check", "--db", str(db), "--junit", str(db_report)]) == 1
    journal.close()
    assert cases(url_report).keys() == cases(db_report).keys()
    assert [len(r) for _, r in cases(url_report).values()] == [
        len(r) for _, r in cases(db_report).values()
    ]


def test_check_exits_2_when_it_cannot_read_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.xml"
    assert main(["check", "--url", "http://127.0.0.1:9", "--junit", str(report)]) == 2
    assert "cannot check the journal: cannot reach http://127.0.0.1:9" in capsys.readouterr().err
    assert not report.exists()
    assert main(["check", "--db", str(tmp_path / "none.db")]) == 2
    assert "there is no journal at" in capsys.readouterr().err
    assert main(["check", "--fail-on", "accepted,nope"]) == 2
    err = capsys.readouterr().err
    assert "--fail-on 'accepted,nope': accepted, nope is not a choice" in err
    with ThreadedServer() as server:
        assert main(["check", "--url", server.url + "/elsewhere"]) == 2
        assert "answered 404" in capsys.readouterr().err


def test_check_and_export_send_the_admin_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mockserver.web.guard import GuardConfig

    with ThreadedServer(guard=GuardConfig(token="s3cret-token")) as server:
        requests.post(server.events_url, json=impression("t"), timeout=10)
        assert main(["check", "--url", server.url]) == 2
        assert "answered 401" in capsys.readouterr().err
        assert main(["check", "--url", server.url, "--token", "s3cret-token"]) == 0
        monkeypatch.setenv("LOGX_MOCK_ADMIN_TOKEN", "s3cret-token")
        out = tmp_path / "a.ndjson"
        assert main(["export", "--url", server.url, "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1
