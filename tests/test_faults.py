"""The fault plan on its own: rules, specs, matching, seeds and cancellable waits."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from typing import Any

import pytest
from helpers import conversion, impression

from mockserver.fault_plan import FaultPlan
from mockserver.faults import FaultError, FaultRule, parse_spec
from mockserver.timing import Delay, Waiter, parse_duration


def kinds(plan: FaultPlan, n: int, payload: Any = None) -> list[str | None]:
    result = []
    for _ in range(n):
        action = plan.decide(payload if payload is not None else impression())
        result.append(None if action is None else (action.kind or "delay"))
    return result


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("status=503,times=2", {"status": 503, "times": 2}),
        ("503", {"status": 503}),
        ("delay=200ms", {"delay": "200ms"}),
        ("delay=100ms-300ms", {"delay": "100ms-300ms"}),
        ("delay=lognormal:100ms:0.5", {"delay": "lognormal:100ms:0.5"}),
        ("reset,rate=0.1,seed=42", {"reset": True, "rate": 0.1, "seed": 42}),
        ("close,nth=3", {"close": True, "nth": 3}),
        ("hang,hang_max=2s", {"hang": True, "hang_max": 2.0}),
        ("dribble,dribble_interval=50ms", {"dribble": True, "dribble_interval": 0.05}),
        ("status=429,retry_after=5", {"status": 429, "retry_after": 5}),
        ("sequence=500:500:normal", {"sequence": [500, 500, "normal"]}),
        (
            "status=500,first=2,event_key=purchase",
            {"status": 500, "first": 2, "event_key": "purchase"},
        ),
    ],
)
def test_spec_language(spec: str, expected: dict[str, Any]) -> None:
    assert parse_spec(spec).to_dict() == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "an empty fault spec"),
        ("stauts=503", "unknown fault option 'stauts' (did you mean 'status'?)"),
        ("status=200", "a fault status is 4xx or 5xx"),
        ("status=abc", "bad fault rule"),
        ("reset,close", "a rule does one thing; got reset, close"),
        ("reset,status=503", "a rule does one thing; got reset, status"),
        ("delay=soon", "'soon' is not a duration; write e.g. 200ms or 1.5s"),
        ("delay=300ms-100ms", "the upper bound is below the lower one"),
        ("rate=2", "a probability between 0 and 1"),
        ("times=0", "times=0: must be 1 or more"),
        ("sequence=500:teapot", "sequence step 'teapot'"),
    ],
)
def test_bad_specs_say_how_to_write_them(spec: str, message: str) -> None:
    with pytest.raises(FaultError, match=re.escape(message)):
        parse_spec(spec)


def test_durations() -> None:
    assert parse_duration("200ms") == 0.2
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("2") == 2.0
    assert parse_duration(0.25) == 0.25


def test_delay_distributions_stay_in_range() -> None:
    rng = random.Random(1)
    uniform = Delay.parse("100ms-300ms")
    assert all(0.1 <= uniform.sample(rng) <= 0.3 for _ in range(200))
    lognormal = Delay.parse("lognormal:100ms:0.5")
    samples = sorted(lognormal.sample(rng) for _ in range(401))
    assert 0.07 < samples[200] < 0.14  # the median is near 100 ms
    assert Delay.parse("250ms").sample(rng) == 0.25


def test_default_action_is_500_every_request() -> None:
    plan = FaultPlan()
    plan.add()
    assert kinds(plan, 3) == ["status"] * 3
    assert plan.decide(impression()).status == 500  # type: ignore[union-attr]


def test_times_nth_first_every() -> None:
    plan = FaultPlan()
    plan.add(status=503, times=2)
    assert kinds(plan, 4) == ["status", "status", None, None]
    for rule, expected in [
        ({"nth": 3}, [None, None, "status", None, None, None]),
        ({"first": 2}, ["status", "status", None, None, None, None]),
        ({"every": 3}, [None, None, "status", None, None, "status"]),
    ]:
        plan.clear()
        plan.add(**rule)
        assert kinds(plan, 6) == expected, rule


def test_sequence_is_one_rule() -> None:
    plan = FaultPlan()
    plan.add(sequence=[500, 503, "reset", "normal"], delay="1ms")
    actions = [plan.decide(impression()) for _ in range(5)]
    assert [a.kind if a else None for a in actions] == ["status", "status", "reset", None, None]
    assert [a.status if a else None for a in actions[:2]] == [500, 503]
    assert actions[3] is not None and actions[3].delay == 0.001  # "normal" after a delay


def test_first_matching_rule_applies() -> None:
    plan = FaultPlan()
    plan.add(reset=True, visitor_id="vip")
    plan.add(status=503)
    assert kinds(plan, 1, impression("vip")) == ["reset"]
    assert kinds(plan, 1, impression("other")) == ["status"]


@pytest.mark.parametrize(
    ("rule", "hit", "miss"),
    [
        ({"account_id": "12001"}, impression(), {**impression(), "account_id": "9"}),
        ({"client_name": "python-sdk"}, impression(), {**impression(), "client_name": "go-sdk"}),
        ({"visitor_id": "alice"}, impression("alice"), impression("bob")),
        ({"event_key": "purchase"}, conversion("purchase"), conversion("signup")),
        (
            {"visitor_id": "alice", "event_key": "purchase"},
            conversion("purchase", "alice"),
            conversion("purchase", "bob"),
        ),
    ],
)
def test_payload_content_matchers(rule: dict[str, Any], hit: Any, miss: Any) -> None:
    plan = FaultPlan()
    plan.add(**rule)
    assert plan.decide(hit) is not None
    assert plan.decide(miss) is None
    assert plan.decide(None) is None
    assert plan.decide("not an object") is None


def test_seeded_rate_is_reproducible_and_seed_is_reported() -> None:
    def run() -> list[str | None]:
        plan = FaultPlan()
        plan.add(reset=True, rate=0.3, seed=42)
        return kinds(plan, 200)

    first, second = run(), run()
    assert first == second
    assert 35 < first.count("reset") < 85
    plan = FaultPlan()
    plan.add(status=500, rate=0.5)
    action = next(a for a in (plan.decide(impression()) for _ in range(100)) if a)
    assert isinstance(action.seed, int)
    assert action.to_dict()["seed"] == action.seed == plan.describe()[0]["seed"]


def test_describe_and_inject() -> None:
    plan = FaultPlan()
    with plan.inject(status=503, times=2) as rule_id:
        assert [r["id"] for r in plan.describe()] == [rule_id]
        plan.decide(impression())
        (described,) = plan.describe()
        assert {k: described[k] for k in ("status", "times", "fired")} == {
            "status": 503,
            "times": 2,
            "fired": 1,
        }
    assert plan.describe() == []


def test_clear_cancels_pending_waits_sync_and_async() -> None:
    plan = FaultPlan()
    waiter = plan.waiter()
    threading.Timer(0.1, plan.clear).start()
    started = time.monotonic()
    assert waiter.wait(30) is False
    assert time.monotonic() - started < 10

    async def wait_async() -> bool:
        pending = plan.waiter()
        asyncio.get_running_loop().call_later(0.1, plan.clear)
        return await pending.wait_async(30)

    started = time.monotonic()
    assert asyncio.run(wait_async()) is False
    assert time.monotonic() - started < 10


def test_a_waiter_that_is_not_cancelled_waits_the_full_time() -> None:
    waiter = Waiter()
    started = time.monotonic()
    assert waiter.wait(0.05) is True
    assert time.monotonic() - started >= 0.05
    assert asyncio.run(waiter.wait_async(0.01)) is True


def test_rules_validate_on_construction() -> None:
    with pytest.raises(FaultError, match="nth=0: must be 1 or more"):
        FaultRule(nth=0)
    assert FaultRule.from_dict({"reset": "true"}).reset is True
