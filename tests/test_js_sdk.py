"""The real Optimizely JavaScript SDK's batches (tests/js_sdk, from npm) against a live server
with the datafile it decided from: accepted strict, no error, no datafile warning."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import DATAFILE

from mockserver import DATAFILE_RULES
from pytest_plugin import ServerHandle

HERE = Path(__file__).parent / "js_sdk"


@pytest.fixture(scope="module")
def js_batches() -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "the JavaScript SDK tests need Node.js; tests/run.sh installs it"
    assert (HERE / "node_modules" / "@optimizely" / "optimizely-sdk").is_dir(), (
        "run `npm ci --prefix tests/js_sdk` (tests/run.sh does)"
    )
    done = subprocess.run(
        [node, str(HERE / "capture.js"), str(DATAFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.logx(strict=True, datafile=DATAFILE)
def test_js_sdk_batches_pass_with_no_datafile_warning(
    js_batches: list[dict[str, Any]], logx_server: ServerHandle
) -> None:
    assert len(js_batches) == 8  # 4 decisions, activate, 3 conversions
    assert {b["client_name"] for b in js_batches} == {"node-sdk"}
    for batch in js_batches:
        response = requests.post(logx_server.events_url, json=batch, timeout=10)
        assert response.status_code == 204, response.text
    for record in logx_server.requests:
        assert (record.verdict, record.errors, record.unknown_fields) == ("accepted", [], [])
        assert [str(w) for w in record.warnings if w.rule in DATAFILE_RULES] == []
        assert record.keys
    logx_server.assert_impression(
        visitor_id="js-user-1", experiment_key="checkout_ab", flag_key="checkout_flow"
    )
    logx_server.assert_impression(visitor_id="js-user-3", experiment_key="checkout_ab", count=1)
    (purchase,) = logx_server.assert_conversion("purchase", revenue=4200, value=3.5)
    assert purchase.entity_key == "purchase"
    assert purchase.attributes == {"plan": "pro", "città": "Zürich", "$opt_bot_filtering": True}
    logx_server.assert_conversion("kauf_€_ünï", visitor_id="js-user-3", revenue=100)
    # The JS SDK sends null, not "", for a no-decision campaign: skipped like the empty string.
    (no_decision,) = logx_server.assert_impression(flag_key="recs")
    assert no_decision.decisions[0]["campaign_id"] is None


# The plugin's DatafileWarning after the test is the point of tests/test_plugin_datafile.py.
@pytest.mark.filterwarnings("ignore::pytest_plugin.DatafileWarning")
def test_a_tampered_js_batch_gets_the_warning(
    js_batches: list[dict[str, Any]], logx_server: ServerHandle
) -> None:
    # At run time, through the admin API (the fixture restores the server's config after).
    requests.post(
        logx_server.url + "/_mock/datafiles",
        data=DATAFILE.read_bytes(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    batch = json.loads(json.dumps(js_batches[0]))
    batch["visitors"][0]["snapshots"][0]["decisions"][0]["experiment_id"] = "999127"
    requests.post(logx_server.events_url, json=batch, timeout=10)
    (record,) = logx_server.requests
    assert [(w.rule, w.path) for w in record.warnings] == [
        ("unknown_experiment", "visitors[0].snapshots[0].decisions[0].experiment_id")
    ]
