"""Real Optimizely Python SDK traffic is accepted in strict mode with no error, and with
no datafile warning against the datafile it decided from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import DATAFILE
from optimizely import optimizely

from mockserver import DATAFILE_RULES
from pytest_plugin import LogxEventDispatcher, ServerHandle

pytestmark = pytest.mark.logx(strict=True, datafile=DATAFILE)


@pytest.fixture
def make_client(logx_event_dispatcher: LogxEventDispatcher) -> Iterator[Any]:
    clients: list[optimizely.Optimizely] = []

    def make(**processor: Any) -> optimizely.Optimizely:
        client = optimizely.Optimizely(
            DATAFILE.read_text(),
            event_dispatcher=logx_event_dispatcher,
            event_processor_options=processor or None,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def assert_all_strict_and_clean(server: ServerHandle) -> None:
    assert server.requests, "the SDK sent nothing"
    for record in server.requests:
        assert record.strict
        assert (record.status, record.verdict, record.errors) == (204, "accepted", [])
        assert record.unknown_fields == []
        assert [str(w) for w in record.warnings if w.rule in DATAFILE_RULES] == []
        assert record.keys, "the datafile resolved none of the ids"


def test_activate_sends_an_accepted_impression(make_client: Any, logx_server: ServerHandle) -> None:
    client = make_client()
    variation = client.activate("checkout_ab", "user-1", {"plan": "pro"})
    (event,) = logx_server.wait_for_events(kind="impression", visitor_id="user-1")
    assert event.decisions[0]["variation_id"] in ("111128", "111129")
    assert event.decisions[0]["metadata"]["variation_key"] == variation
    logx_server.assert_impression(
        visitor_id="user-1", experiment_id="111127", campaign_id="111182", rule_key="checkout_ab"
    )
    assert event.attributes["plan"] == "pro"
    assert_all_strict_and_clean(logx_server)


def test_track_with_revenue_value_and_tags(make_client: Any, logx_server: ServerHandle) -> None:
    client = make_client()
    client.track(
        "purchase", "user-2", {"plan": "pro"}, {"revenue": 4200, "value": 3.5, "category": "shoes"}
    )
    logx_server.wait_for_events(key="purchase")
    (event,) = logx_server.assert_conversion(
        "purchase", visitor_id="user-2", revenue=4200, value=3.5, tags={"category": "shoes"}
    )
    assert event.entity_id == "111095"
    assert_all_strict_and_clean(logx_server)


def test_decide_feature_test_rollout_and_no_decision(
    make_client: Any, logx_server: ServerHandle
) -> None:
    client = make_client()
    user = client.create_user_context("user-3", {"plan": "pro"})
    assert user.decide("checkout_flow").rule_key == "checkout_ab"
    assert user.decide("banner").variation_key == "on"
    assert user.decide("recs").variation_key is None
    logx_server.wait_for_events(3, kind="impression")
    logx_server.assert_impression(flag_key="checkout_flow", rule_key="checkout_ab", count=1)
    (everyone_else,) = logx_server.assert_impression(flag_key="banner")
    assert everyone_else.entity_id == "default-layer-91112"
    (no_decision,) = logx_server.assert_impression(flag_key="recs")
    decision = no_decision.decisions[0]
    assert (decision["variation_id"], decision["experiment_id"], decision["campaign_id"]) == (
        None,
        "",
        "",
    )
    assert_all_strict_and_clean(logx_server)
    warned = {w.rule for r in logx_server.requests for w in r.warnings}
    assert "empty_id" in warned  # accepted, but production would not attribute it


def test_unicode_ids_and_attribute_values(make_client: Any, logx_server: ServerHandle) -> None:
    client = make_client()
    user = client.create_user_context("usér-ü€-😀", {"città": "Zürich", "plan": 7.25})
    user.decide("checkout_flow")
    user.track_event("kauf_€_ünï", {"revenue": 100})
    logx_server.wait_for_events(2)
    (conversion,) = logx_server.assert_conversion("kauf_€_ünï", visitor_id="usér-ü€-😀")
    assert conversion.attributes == {"città": "Zürich", "plan": 7.25, "$opt_bot_filtering": True}
    assert_all_strict_and_clean(logx_server)


def test_batch_size_one_sends_one_request_per_event(
    make_client: Any, logx_server: ServerHandle
) -> None:
    client = make_client()
    for i in range(3):
        client.track("signup", f"solo-{i}")
    logx_server.wait_for_events(3, key="signup")
    assert [len(r.events) for r in logx_server.requests] == [1, 1, 1]
    assert_all_strict_and_clean(logx_server)


def test_batch_size_ten_sends_one_batch(make_client: Any, logx_server: ServerHandle) -> None:
    client = make_client(batch_size=10, flush_interval=60)
    for i in range(10):
        client.track("signup", f"batched-{i}", None, {"n": i})
    logx_server.wait_for_events(10, key="signup", timeout=15)
    (record,) = logx_server.requests
    assert len(record.payload["visitors"]) == 10
    assert [e.tags["n"] for e in record.events] == list(range(10))
    assert_all_strict_and_clean(logx_server)


def test_keys_resolve_through_the_datafile(make_client: Any, logx_server: ServerHandle) -> None:
    client = make_client()
    variation = client.activate("checkout_ab", "user-k", {"plan": "pro"})
    client.track("purchase", "user-k", {"plan": "pro"})
    logx_server.wait_for_events(2, visitor_id="user-k")
    (impression,) = logx_server.assert_impression(
        experiment_key="checkout_ab", variation_key=variation, flag_key="checkout_flow"
    )
    assert impression.decision_keys[0]["experiment_key"] == "checkout_ab"
    (conversion,) = logx_server.assert_conversion("purchase", visitor_id="user-k")
    assert conversion.entity_key == "purchase"
    assert_all_strict_and_clean(logx_server)
