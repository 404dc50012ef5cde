"""The plugin with a datafile: ini key, marker, keys in assertions, exact failure texts."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import DATAFILE, run_user_tests

pytest_plugins = ["pytester"]

# An older SDK's impression: ids only, no metadata; and a conversion sent without its key.
HEADER = """
import httpx, pytest
URL = "https://logx.optimizely.com/v1/events"

def batch(snapshot, project="111001"):
    return {"account_id": "12001", "project_id": project, "revision": "42",
            "anonymize_ip": True, "visitors": [{"visitor_id": "v1", "attributes": [
                {"entity_id": "7723280020", "type": "custom", "value": "pro"},
                {"entity_id": "$opt_bot_filtering", "key": "$opt_bot_filtering",
                 "type": "custom", "value": True}],
            "snapshots": [snapshot]}]}

IDS_ONLY = batch({"decisions": [{"campaign_id": "111182", "experiment_id": "111127",
                                 "variation_id": "111129"}],
                  "events": [{"entity_id": "111182", "key": "campaign_activated",
                              "uuid": "u-1", "timestamp": 1767225600123}]})
NO_KEY = batch({"events": [{"entity_id": "111095", "uuid": "u-2", "timestamp": 1767225600124,
                            "revenue": 100}]})
"""


def run(
    pytester: pytest.Pytester, body: str, *, ini: str = "", marker: str = ""
) -> pytest.RunResult:
    shutil.copy(DATAFILE, pytester.path / "datafile.json")
    return run_user_tests(pytester, HEADER + marker + body, ini=ini)


KEYS_TEST = """
def test_keys(logx_mock):
    with httpx.Client() as client:
        assert client.post(URL, json=IDS_ONLY).status_code == 204
        assert client.post(URL, json=NO_KEY).status_code == 204
    (impression,) = logx_mock.assert_impression(
        experiment_key="checkout_ab", variation_key="treatment", flag_key="checkout_flow"
    )
    assert impression.decision_keys == [{"experiment_key": "checkout_ab",
        "variation_key": "treatment", "flag_key": "checkout_flow"}]
    assert impression.attributes == {"plan": "pro", "$opt_bot_filtering": True}
    (conversion,) = logx_mock.assert_conversion("purchase", revenue=100)
    assert (conversion.key, conversion.entity_key) == (None, "purchase")
    assert logx_mock.get_events(key="purchase") == [conversion]
    assert [w.rule for r in logx_mock.requests for w in r.warnings] == []
"""


def test_marker_datafile_resolves_keys_the_payload_does_not_carry(
    pytester: pytest.Pytester,
) -> None:
    marker = "\npytestmark = pytest.mark.logx(datafile='datafile.json')\n"
    result = run(pytester, KEYS_TEST, marker=marker)
    result.assert_outcomes(passed=1)


def test_ini_datafile_applies_to_every_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, KEYS_TEST, ini="logx_datafile = datafile.json\n")
    result.assert_outcomes(passed=1)


def test_without_a_datafile_keys_are_not_resolved(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.logx(datafile=None)
def test_keys(logx_mock):
    httpx.post(URL, json=IDS_ONLY)
    logx_mock.assert_impression(experiment_key="checkout_ab")
""",
        ini="logx_datafile = datafile.json\n",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: Expected at least one impression with kind='impression', "
            "experiment_key='checkout_ab', verdict='accepted', found 0.",
            "E*1 event(s) arrived; the closest:",
            "E*decision.experiment_key: expected 'checkout_ab', got None",
        ]
    )


def test_marker_accepts_the_datafile_text_and_dict_and_the_live_server(
    pytester: pytest.Pytester,
) -> None:
    datafile = DATAFILE.read_text()
    result = run(
        pytester,
        f"""
import json, requests
TEXT = {datafile!r}

@pytest.mark.logx(datafile=TEXT)
def test_text(logx_transport):
    with httpx.Client(transport=logx_transport) as client:
        client.post(URL, json=IDS_ONLY)
    logx_transport.assert_impression(variation_key="treatment")

@pytest.mark.logx(datafile=[json.loads(TEXT)])
def test_dict_on_the_live_server(logx_server):
    requests.post(logx_server.events_url, json=NO_KEY, timeout=10)
    logx_server.assert_conversion("purchase")

def test_the_next_test_has_no_datafile(logx_server):
    requests.post(logx_server.events_url, json=NO_KEY, timeout=10)
    assert logx_server.get_events(key="purchase") == []
""",
    )
    result.assert_outcomes(passed=3)


def test_near_misses_show_the_keys_next_to_the_ids(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.logx(datafile="datafile.json")
def test_wrong_variation(logx_mock):
    httpx.post(URL, json=IDS_ONLY)
    logx_mock.assert_impression(experiment_key="checkout_ab", variation_key="control")
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*1 event(s) arrived; the closest:",
            "E*- impression key='campaign_activated' visitor_id='v1' experiment_id='111127' "
            "(checkout_ab) variation_id='111129' (treatment) flag_key='checkout_flow' "
            "(request #1, accepted)",
            "E*decision.variation_key: expected 'control', got 'treatment'",
        ]
    )


WRONG_PROJECT = """
@pytest.mark.logx(datafile="datafile.json")
def test_wrong_project(logx_mock):
    httpx.post(URL, json=batch(IDS_ONLY["visitors"][0]["snapshots"][0], project="999"))
    (request,) = logx_mock.requests
    assert [(w.rule, w.path) for w in request.warnings] == [("project_mismatch", "project_id")]
"""


def test_datafile_warnings_show_in_the_warnings_summary(pytester: pytest.Pytester) -> None:
    result = run(pytester, WRONG_PROJECT)
    result.assert_outcomes(passed=1, warnings=1)  # the teardown check does not fail on them
    result.stdout.fnmatch_lines(
        [
            "*test_user.py:*: DatafileWarning: 1 id(s) the datafile contradicts; the real "
            "endpoint accepts these batches and results drop the data:",
            "*  request #1: project_id: project_id '999' is not the project of the datafile(s) "
            "given (111001): these events go to another project's results [[]project_mismatch[]]",
        ]
    )


def test_datafile_warnings_can_be_made_errors(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        WRONG_PROJECT,
        ini="filterwarnings = error::pytest_plugin.DatafileWarning\n",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*DatafileWarning: 1 id(s) the datafile contradicts*"])


def test_assert_no_warnings_lists_each_warning_with_its_path(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
from mockserver import DATAFILE_RULES

@pytest.mark.logx(datafile="datafile.json")
def test_ids(logx_mock):
    wrong = batch(IDS_ONLY["visitors"][0]["snapshots"][0])
    wrong["visitors"][0]["snapshots"][0]["decisions"][0]["variation_id"] = "111130"
    httpx.post(URL, json=wrong)
    httpx.post(URL, json=NO_KEY)
    logx_mock.assert_no_warnings("empty_id")  # none of those
    logx_mock.assert_no_warnings(*DATAFILE_RULES)
""",
    )
    result.assert_outcomes(failed=1, warnings=1)
    out = result.stdout.str()  # (fnmatch would read the brackets of the paths as classes)
    assert (
        "E       AssertionError: 1 warning(s) (accepted by the real endpoint, but the data would "
        "probably not count in results):\n"
        "E         request #1: visitors[0].snapshots[0].decisions[0].variation_id: variation_id "
        "'111130' is not a variation of experiment '111127' (checkout_ab); no experiment "
        "of the datafile has it: the visitor is counted in no variation [variation_mismatch]\n"
    ) in out


def test_a_missing_or_bad_datafile_fails_at_setup_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "broken.json").write_text(json.dumps({"version": "4"}))
    result = run(
        pytester,
        """
@pytest.mark.logx(datafile="missing.json")
def test_missing(logx_mock):
    pass

@pytest.mark.logx(datafile="broken.json")
def test_broken(logx_mock):
    pass

@pytest.mark.logx(datafile=42)
def test_not_a_datafile(logx_mock):
    pass
""",
    )
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "*UsageError: logx option datafile: cannot read the datafile '*missing.json': "
            "No such file or directory*",
            "*UsageError: logx option datafile: broken.json: accountId must be a string, got None*",
            "*UsageError: logx option datafile: 42 is not a datafile; give a path, the "
            "datafile's JSON text or dict, or a list of them",
        ]
    )


def test_expect_warnings_fails_when_the_warning_does_not_come_and_hides_it_when_it_does(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
WRONG = batch(NO_KEY["visitors"][0]["snapshots"][0], project="999")

@pytest.mark.logx(datafile="datafile.json", expect_warnings=["project_mismatch"])
def test_comes(logx_mock):
    httpx.post(URL, json=WRONG)

@pytest.mark.logx(datafile="datafile.json", expect_warnings=["project_mismatch"])
def test_does_not_come(logx_mock):
    httpx.post(URL, json=NO_KEY)

@pytest.mark.logx(datafile="datafile.json", expect_warnings=["project_mismatch"])
def test_another_warning_still_warns(logx_mock):
    wrong = batch(IDS_ONLY["visitors"][0]["snapshots"][0], project="999")
    httpx.post(URL, json=wrong)
    wrong = batch(IDS_ONLY["visitors"][0]["snapshots"][0])
    wrong["visitors"][0]["snapshots"][0]["decisions"][0]["variation_id"] = "111130"
    httpx.post(URL, json=wrong)

@pytest.mark.logx(expect_warnings=["project_mismach"])
def test_misspelled(logx_mock):
    pass
""",
        ini="filterwarnings = error::pytest_plugin.DatafileWarning\n",
    )
    result.assert_outcomes(passed=3, errors=3)  # two of them fail at teardown
    out = result.stdout.str()
    assert "ERROR at teardown of test_does_not_come" in out
    lines = [line.removeprefix("E").strip() for line in out.splitlines()]
    start = lines.index("AssertionError: Expected the warning(s) project_mismatch, but none came.")
    assert lines[start + 1 : start + 3] == [
        "1 request(s) reached the mock:",
        "#1 204 accepted: 1 event(s), 0 error(s), 1 warning(s)",
    ]
    assert "[conversion_before_decision]" in lines[start + 3]
    assert "ERROR at teardown of test_another_warning_still_warns" in out
    assert "DatafileWarning: 1 id(s) the datafile contradicts" in out
    assert "[variation_mismatch]" in out and "[project_mismatch]" not in out
    assert (
        "UsageError: logx option expect_warnings: unknown warning rule 'project_mismach' "
        "(did you mean 'project_mismatch'?)"
    ) in out
