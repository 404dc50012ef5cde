"""The fault plan: the rules in force, their counters, and a decision per request.

A plan is an ordered list of rules (`faults.FaultRule`); the first that applies to a
request decides it. The plan decides; it never sleeps or touches a socket. Its
decision, a `FaultAction`, is data that each door renders its own way; pending
delays wait on `Waiter`s the plan can cut short from any thread (`clear()`).

**Where the plan lives.** Its whole state is a small document, `PlanState` (rules,
seeds, how often each fired, how many requests the plan has seen). A `FaultPlan`
keeps it in memory, or in the journal's database (SQLite, PostgreSQL) through the
journal's `PlanStore`: then every process that shares the journal (`serve --workers`,
instances on one PostgreSQL) shares one plan. The journal decides each request in
the same serialized step that gives it its id, so a rule added through any process
applies to every request committed after the answer to that `add`, and `nth=3`
is the third request in id order.

**Counting.** The plan counts the requests it sees while it holds a rule (`nth`,
`first`, `every` count from there); `clear()` starts the count again.

**Seeds.** A rule's randomness (`rate`, a random `delay`) comes from a generator made
from its seed and the number of the draw: the k-th draw of seed 42 is the same in
every run and every process. So a seeded rule makes the same sequence of decisions
in every run. When several instances share the plan they take those draws in the
order their requests commit: the k-th request the rule considers always gets the
same answer, but which request is k-th depends on how the load balancer interleaves
them. The count of faults among the first N requests is what stays reproducible.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from .errors import FaultError, FaultPlanFull
from .faults import MAX_RULES, STEP_KINDS, TERMINALS, FaultAction, FaultKind, FaultRule
from .model import RequestRecord
from .timing import Waiter

__all__ = ["Decides", "FaultPlan", "PlanState", "PlanStore", "apply_decision", "decide_record"]

_T = TypeVar("_T")


@dataclasses.dataclass
class _Slot:
    """One rule in the plan, with its counters."""

    id: int
    rule: FaultRule
    seed: int
    fired: int = 0
    draws: int = 0

    def draw(self) -> random.Random:
        """The generator for this rule's next draw: its seed and the draw's number."""
        rng = random.Random(f"{self.seed}:{self.draws}")
        self.draws += 1
        return rng


@dataclasses.dataclass
class PlanState:
    """Everything a plan knows, as plain data (a shared journal stores it as JSON)."""

    slots: list[_Slot] = dataclasses.field(default_factory=list)
    seen: int = 0
    next_id: int = 1
    clears: int = 0
    """How many times the plan was cleared: a process that sees it grow cuts its own
    pending delays short."""

    def to_json(self) -> str:
        slots = [
            {
                "id": s.id,
                "rule": s.rule.to_dict(),
                "seed": s.seed,
                "fired": s.fired,
                "draws": s.draws,
            }
            for s in self.slots
        ]
        return json.dumps(
            {"slots": slots, "seen": self.seen, "next_id": self.next_id, "clears": self.clears}
        )

    @classmethod
    def from_json(cls, text: str) -> PlanState:
        data = json.loads(text)
        slots = [
            _Slot(s["id"], FaultRule.from_dict(s["rule"]), s["seed"], s["fired"], s["draws"])
            for s in data["slots"]
        ]
        return cls(slots, data["seen"], data["next_id"], data["clears"])

    def add(self, rule: FaultRule, seed: int) -> int:
        if len(self.slots) >= MAX_RULES:
            raise FaultPlanFull(
                f"the fault plan already holds {MAX_RULES} rules, the most it takes; "
                "remove some (DELETE /_mock/faults clears the plan) or merge them"
            )
        self.slots.append(_Slot(self.next_id, rule, seed))
        self.next_id += 1
        return self.next_id - 1

    def remove(self, rule_id: int) -> None:
        self.slots = [s for s in self.slots if s.id != rule_id]

    def clear(self) -> None:
        self.slots, self.seen, self.clears = [], 0, self.clears + 1

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, **s.rule.to_dict(), "seed": s.seed, "fired": s.fired} for s in self.slots
        ]

    def decide_for(self, record: RequestRecord) -> FaultAction | None:
        """`decide(record.payload)`, reading the payload only when a rule is in force (a
        clean batch's payload is decoded on first read: `RequestRecord.defer_payload`)."""
        return self.decide(record.payload) if self.slots else None

    def decide(self, payload: Any) -> FaultAction | None:
        """Count one request and return the action of the first rule that applies."""
        if not self.slots:
            return None
        self.seen += 1
        for slot in self.slots:
            action = _try(slot, self.seen, payload)
            if action is not None:
                return action
        return None


def _try(slot: _Slot, number: int, payload: Any) -> FaultAction | None:
    rule = slot.rule
    if rule.times is not None and slot.fired >= rule.times:
        return None
    if rule.sequence and slot.fired >= len(rule.sequence):
        return None
    if rule.nth is not None and number != rule.nth:
        return None
    if rule.first is not None and number > rule.first:
        return None
    if rule.every is not None and number % rule.every:
        return None
    if not rule.matches_content(payload):
        return None
    rng = slot.draw() if rule.rate is not None or rule.delay is not None else None
    if rule.rate is not None and rng is not None and rng.random() >= rule.rate:
        return None
    step = rule.sequence[slot.fired] if rule.sequence else None
    slot.fired += 1
    return _action(slot, step, rng)


def _action(slot: _Slot, step: int | str | None, rng: random.Random | None) -> FaultAction:
    rule = slot.rule
    delay = rule.delay.sample(rng) if rule.delay is not None and rng is not None else 0.0
    kind: FaultKind | None
    status = rule.status
    if isinstance(step, int):
        kind, status = "status", step
    elif step is not None:
        kind, status = STEP_KINDS[step], None
    else:
        kind = next((name for name in TERMINALS if getattr(rule, name)), None)
        if kind is None and (status is not None or rule.delay is None):
            kind, status = "status", status or 500
    if kind == "dribble":
        status = rule.status or 500
    return FaultAction(
        rule_id=slot.id,
        seed=slot.seed,
        delay=delay,
        kind=kind,
        status=status,
        retry_after=rule.retry_after,
        hang_max=rule.hang_max,
        dribble_interval=rule.dribble_interval,
    )


class Decides(Protocol):
    """What decides a request: a `FaultPlan`, or a `PlanState` inside a journal's step."""

    def decide_for(self, record: RequestRecord) -> FaultAction | None: ...


def decide_record(plan: Decides, record: RequestRecord) -> None:
    """Decide `record` with `plan` and journal the decision. A `not_found` request (a path or
    method the endpoint does not serve) is neither counted nor faulted: faults are the Log
    Endpoint's, and a stray `GET /` must not use up a `times=1` rule."""
    apply_decision(record, None if record.verdict == "not_found" else plan.decide_for(record))


def apply_decision(record: RequestRecord, action: FaultAction | None) -> None:
    """Journal the plan's decision with the request: a faulted request's events were not
    delivered (a pure delay keeps the normal answer, and its events count)."""
    record.action = action
    if action is None:
        return
    record.fault = action.to_dict()
    if not action.faulted:
        return
    record.set_verdict("faulted")  # and its events'
    record.status = action.status or 0


class PlanStore(Protocol):
    """Where a plan's state lives, when not in the plan's own memory (a journal)."""

    def change_plan(self, change: Callable[[PlanState], _T]) -> _T:
        """Run `change` on the plan's state, atomically and in order with the requests
        the journal commits; what `change` returns is returned."""


class _InMemory:
    """A plan's state in this process, behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = PlanState()

    def change_plan(self, change: Callable[[PlanState], _T]) -> _T:
        with self._lock:
            return change(self.state)


class FaultPlan:
    """The rules in force, consulted once per request; thread-safe.

    `store`: where the state lives (a shared journal's database); in memory by default.
    """

    def __init__(self, store: PlanStore | None = None) -> None:
        self._store: PlanStore = store or _InMemory()
        self._lock = threading.Lock()
        self._waiters: set[Waiter] = set()

    def __repr__(self) -> str:
        if isinstance(self._store, _InMemory):
            state = self._store.state
            return f"<FaultPlan rules={len(state.slots)} seen={state.seen}>"
        return f"<FaultPlan in {self._store!r}>"

    def __len__(self) -> int:
        return self._store.change_plan(lambda state: len(state.slots))

    def add(self, rule: FaultRule | None = None, **options: Any) -> int:
        """Append a rule (a FaultRule, or its options as keywords); returns its id."""
        rule = rule if rule is not None else FaultRule.from_dict(options)
        seed = _seed(rule)
        return self._store.change_plan(lambda state: state.add(rule, seed))

    def remove(self, rule_id: int) -> None:
        self._store.change_plan(lambda state: state.remove(rule_id))

    def replace(self, rules: list[FaultRule]) -> list[int]:
        """Clear the plan (cancelling pending delays) and add `rules`, in one step."""
        if len(rules) > MAX_RULES:
            raise FaultError(f"{len(rules):,} fault rules: a plan takes at most {MAX_RULES}")
        seeded = [(rule, _seed(rule)) for rule in rules]

        def change(state: PlanState) -> list[int]:
            state.clear()
            return [state.add(rule, seed) for rule, seed in seeded]

        ids = self._store.change_plan(change)
        self.cut_delays_short()
        return ids

    def clear(self) -> None:
        """Remove every rule, restart the request count, cancel pending delays."""
        self._store.change_plan(PlanState.clear)
        self.cut_delays_short()

    @contextmanager
    def inject(self, **options: Any) -> Iterator[int]:
        """`with plan.inject(status=503, times=2): ...` adds a rule for the block only."""
        rule_id = self.add(**options)
        try:
            yield rule_id
        finally:
            self.remove(rule_id)

    def describe(self) -> list[dict[str, Any]]:
        """The rules in force, with their ids, seeds and how often each fired."""
        return self._store.change_plan(PlanState.describe)

    def decide(self, payload: Any) -> FaultAction | None:
        """Count one request and return the action of the first rule that applies."""
        return self._store.change_plan(lambda state: state.decide(payload))

    def decide_for(self, record: RequestRecord) -> FaultAction | None:
        """`decide(record.payload)`, reading the payload only when a rule is in force."""
        return self._store.change_plan(lambda state: state.decide_for(record))

    def waiter(self) -> Waiter:
        """A cancellable delay, registered so `clear()` can cut it short."""
        waiter = Waiter()
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def release(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def cut_delays_short(self) -> None:
        """End every pending delay of this process (the plan was cleared, here or by
        another process sharing it)."""
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.cancel()


def _seed(rule: FaultRule) -> int:
    """The rule's seed, or a random one (reported, so a run can be repeated)."""
    return rule.seed if rule.seed is not None else random.SystemRandom().randrange(2**32)
