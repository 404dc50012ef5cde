"""The Log Endpoint contract, case by case, through every door; and door parity.

`pytest contract_tests` runs the whole corpus through every door.
`pytest contract_tests --logx-url URL` runs the status-level cases against a
running endpoint; the cases that read the journal are skipped there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .corpus import CASES, Case
from .targets import DOORS, Response, Target

MODES = ["permissive", "strict"]
JOURNAL_CASES = [c for c in CASES if c.uses_journal]
_COMPARED_HEADERS = (
    "content-type",
    "allow",
    "retry-after",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
)


def _pairs(value: list[list[str]] | None) -> list[tuple[str, str]]:
    return sorted((path, rule) for path, rule in value or [])


def _violations(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((v["path"], v["rule"]) for v in items)


def _send(target: Target, case: Case, strict: bool) -> Response:
    datafile = case.datafile()
    if datafile is not None:
        target.use_datafile(datafile)
    return target.send(case.request(strict))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_status(target: Target, case: Case, mode: str) -> None:
    if not target.has_journal and case.request(False).path.startswith("/datafiles/"):
        pytest.skip("the CDN's datafile routes are logx-mock's, not the Log Endpoint's")
    strict = mode == "strict"
    response = _send(target, case, strict)
    assert response.status == case.status(strict), response.body[:500]
    for name, value in case.expect.get("headers", {}).items():
        assert response.headers.get(name) == value, name
    if case.expect.get("body") == "datafile":
        assert response.body == case.datafile()
    elif response.status in (204, 304):
        assert response.body == b""
    elif response.body:
        problem = json.loads(response.body)
        assert problem["status"] == response.status
        assert response.headers["content-type"] == "application/problem+json"
        if response.status == 400 and case.expect.get("errors"):
            assert _violations(problem["violations"]) == _pairs(case.expect["errors"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", JOURNAL_CASES, ids=[c.id for c in JOURNAL_CASES])
def test_journal(target: Target, case: Case, mode: str) -> None:
    if not target.has_journal:
        pytest.skip(
            f"{case.id} reads the journal, which an endpoint given by --logx-url "
            "does not expose; its status is checked by test_status"
        )
    strict = mode == "strict"
    _send(target, case, strict)
    records = target.journal()
    expect = case.expect
    if expect.get("journaled") is False:
        assert records == []
        return
    (record,) = records
    assert record["strict"] is strict
    assert record["status"] == case.status(strict)
    assert record["verdict"] == expect["verdict"]
    assert _violations(record["errors"]) == _pairs(expect.get("errors"))
    if "warnings" in expect:
        assert _violations(record["warnings"]) == _pairs(expect["warnings"])
    if "unknown_fields" in expect:
        assert sorted(v["path"] for v in record["unknown_fields"]) == sorted(
            expect["unknown_fields"]
        )
    if "events" in expect:
        assert len(record["events"]) == expect["events"]
    assert all(e["verdict"] == record["verdict"] for e in record["events"])
    if "client_ip" in expect:
        assert record["client_ip"] == expect["client_ip"]
    if "keys" in expect:
        assert record["keys"] == expect["keys"]


def _observed(target: Target, case: Case, strict: bool) -> dict[str, Any]:
    """What one door did with one case: the response and the journal, comparable."""
    response = _send(target, case, strict)
    body: Any = response.body.decode("utf-8", "replace")
    if response.body.startswith(b"{"):
        body = json.loads(response.body)
        body.pop("request_id", None)
    seen: dict[str, Any] = {
        "status": response.status,
        "headers": {k: response.headers.get(k) for k in _COMPARED_HEADERS},
        "body": body,
    }
    if target.has_journal:
        records = target.journal()
        for record in records:
            for key in ("id", "received_at", "headers", "host"):
                record.pop(key)
            for event in record["events"]:
                event.pop("request_id")
                event.pop("received_at")
        seen["journal"] = records
    return seen


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_parity(
    case: Case, mode: str, open_door: Callable[[str], Target], request: pytest.FixtureRequest
) -> None:
    if request.config.getoption("--logx-url"):
        pytest.skip("parity compares logx-mock's own doors; not run against --logx-url")
    strict = mode == "strict"
    reference = _observed(open_door(DOORS[0]), case, strict)
    for name in DOORS[1:]:
        assert _observed(open_door(name), case, strict) == reference, (
            f"{name} differs from {DOORS[0]}"
        )
