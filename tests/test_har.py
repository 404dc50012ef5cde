"""The HAR 1.2 export: valid against the HAR 1.2 JSON Schema (har-schema, from npm, checked
with jsonschema), and opened by a real consumer: Playwright's `route_from_har` in
Debian's Chromium serves the recorded answers back to the page's own requests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from journal_traffic import fill
from jsonschema import Draft6Validator
from playwright.sync_api import Browser
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6
from test_inspector import browser  # noqa: F401  (the fixture: Debian's Chromium)

from mockserver import ThreadedServer
from mockserver.serve.cli import main

HAR_SCHEMA = Path(__file__).parent / "js_sdk" / "node_modules" / "har-schema" / "lib"


def har_validator() -> Draft6Validator:
    """The har-schema package's schemas (draft-06, one file per object, joined by `$ref`)."""
    assert HAR_SCHEMA.is_dir(), "run `npm ci --prefix tests/js_sdk` (tests/run.sh does)"
    resources = []
    for path in HAR_SCHEMA.glob("*.json"):
        contents = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(contents, DRAFT6)))
    registry: Registry[Any] = Registry().with_resources(resources)
    root = json.loads((HAR_SCHEMA / "har.json").read_text())
    return Draft6Validator(root, registry=registry, format_checker=Draft6Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def har(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("har") / "traffic.har"
    with ThreadedServer() as server:
        fill(server)
        assert main(["export", "--url", server.url, "--format", "har", "-o", str(path)]) == 0
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_the_export_is_valid_har_1_2(har: dict[str, Any]) -> None:
    validator = har_validator()
    assert list(validator.iter_errors(har)) == []
    assert har["log"]["version"] == "1.2" and har["log"]["creator"]["name"] == "logx-mock"
    assert len(har["log"]["entries"]) == 14
    # The schema does see a broken document (the check above is not vacuous).
    broken = json.loads(json.dumps(har))
    del broken["log"]["entries"][0]["response"]["status"]
    assert [e.message for e in validator.iter_errors(broken)] == ["'status' is a required property"]


def test_entries_hold_the_request_and_the_answer_it_got(har: dict[str, Any]) -> None:
    entries = {e["_logx_mock"]["id"]: e for e in har["log"]["entries"]}
    first = entries[1]
    assert first["request"]["method"] == "POST" and first["request"]["url"].endswith("/v1/events")
    assert {"name": "content-type", "value": "application/json"} in first["request"]["headers"]
    body = json.loads(first["request"]["postData"]["text"])
    assert body["visitors"][0]["visitor_id"] == "alice"
    assert first["response"]["status"] == 204 and first["response"]["statusText"] == "No Content"
    strict = entries[7]
    assert strict["response"]["status"] == 400
    problem = json.loads(strict["response"]["content"]["text"])
    assert strict["response"]["content"]["mimeType"] == "application/problem+json"
    assert problem["request_id"] == 7 and len(problem["violations"]) == 2
    not_utf8 = entries[9]["request"]["postData"]
    assert not_utf8["_encoding"] == "base64"
    assert base64.b64decode(not_utf8["text"]) == b"\xff\xfe{}"
    too_large = entries[13]["request"]
    assert "postData" not in too_large and too_large["bodySize"] == -1
    assert entries[13]["response"]["status"] == 413
    faulted = entries[14]
    assert faulted["response"]["status"] == 503 and faulted["_logx_mock"]["verdict"] == "faulted"
    assert json.loads(faulted["response"]["content"]["text"])["rule"] == 1


SEND = """async (bodies) => {
  const answers = [];
  for (const body of bodies) {
    const response = await fetch("/v1/events", {
      method: "POST", headers: {"content-type": "application/json"}, body});
    answers.push([response.status, await response.text()]);
  }
  return answers;
}"""


def test_chromium_serves_the_har_back_with_route_from_har(
    browser: Browser,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    good = json.dumps({"account_id": "12001", "visitors": []})
    bodies = [
        json.dumps(json.loads((Path(__file__).parent / "payloads" / name).read_text()))
        for name in ("python-sdk-decide-impression.json",)
    ] + [good, '{"visitors": [1,']
    path = tmp_path / "page.har"
    with ThreadedServer() as server:
        recording = browser.new_context()
        page = recording.new_page()
        page.goto(server.url + "/_mock/")
        sent = page.evaluate(SEND, bodies)
        recording.close()
        assert [status for status, _ in sent] == [204, 204, 400]  # rejected: 204, as in production
        assert main(["export", "--url", server.url, "--format", "har", "-o", str(path)]) == 0
        journaled = server.endpoint.journal.last_id
        replaying = browser.new_context()
        replaying.route_from_har(path, url="**/v1/events", not_found="abort")
        page = replaying.new_page()
        page.goto(server.url + "/_mock/")
        served = page.evaluate(SEND, bodies)
        replaying.close()
        # The answers came from the HAR: the server journaled nothing more.
        assert server.endpoint.journal.last_id == journaled
    assert served == sent
