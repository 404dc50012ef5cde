"""Batches the real Optimizely Python SDK sends for tests/datafile.json, captured as sent.

The SDK is given a dispatcher that keeps each batch instead of posting it (the
SDK's default event processor dispatches synchronously, in call order), so tests
can check and tamper with exactly what an integrator's app would send.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from helpers import DATAFILE
from optimizely import optimizely
from optimizely.event.log_event import LogEvent
from optimizely.optimizely_user_context import OptimizelyUserContext

Context = OptimizelyUserContext.OptimizelyDecisionContext
Forced = OptimizelyUserContext.OptimizelyForcedDecision


class _Keep:
    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def dispatch_event(self, event: LogEvent) -> None:
        self.batches.append(event.params)


def capture(
    datafile: str, drive: Callable[[optimizely.Optimizely], object]
) -> list[dict[str, Any]]:
    """Every batch the SDK sends, built from `datafile`, while `drive(client)` runs."""
    keep = _Keep()
    client = optimizely.Optimizely(datafile, event_dispatcher=keep)
    try:
        drive(client)
    finally:
        client.close()
    return keep.batches


def _drive(client: optimizely.Optimizely) -> None:
    client.activate("checkout_ab", "user-1", {"plan": "pro"})
    client.track("purchase", "user-1", {"plan": "pro", "città": "Zürich"}, {"revenue": 4200})
    user = client.create_user_context("user-2", {"plan": "pro"})
    user.decide("checkout_flow")
    user.decide("banner")
    user.decide("recs")
    client.is_feature_enabled("banner", "user-3")
    forced = client.create_user_context("user-4", {"plan": "pro"})
    forced.set_forced_decision(Context("checkout_flow", None), Forced("treatment"))
    forced.decide("checkout_flow")
    forced = client.create_user_context("user-5", {"plan": "pro"})
    forced.set_forced_decision(Context("checkout_flow", "checkout_ab"), Forced("control"))
    forced.decide("checkout_flow")
    client.set_forced_variation("checkout_ab", "user-6", "treatment")
    client.activate("checkout_ab", "user-6")


@functools.cache
def _captured() -> dict[str, dict[str, Any]]:
    batches = capture(DATAFILE.read_text(), _drive)
    assert len(batches) == len(SDK_BATCHES), batches
    return dict(zip(SDK_BATCHES, batches, strict=True))


SDK_BATCHES = (
    "activate",
    "track",
    "feature_test",
    "rollout",
    "no_decision",
    "feature_enabled",
    "forced_for_flag",
    "forced_for_rule",
    "forced_variation",
)


def sdk_batch(name: str) -> dict[str, Any]:
    """A fresh copy of one captured batch: activate, track, feature_test (decide on an
    A/B rule), rollout ("everyone else"), no_decision, feature_enabled, forced decisions
    for a flag and for a rule, and activate with a forced variation."""
    return copy.deepcopy(_captured()[name])
