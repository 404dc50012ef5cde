"""The fault plan: rules that make the endpoint fail on purpose, repeatably.

A plan is an ordered list of rules; the first rule that matches a request
applies. A rule is one flat dict, the same from the CLI (`--fault
status=503,times=2`), the admin API (`POST /_mock/faults`) and pytest
(`handle.faults.add(status=503, times=2)`).

The plan decides; it never sleeps or touches a socket. Its decision, a
`FaultAction`, is data ("wait 0.2 s, then reset the connection") that each
door renders its own way. Pending delays wait on `Waiter`s the plan can cancel
from any thread (`clear()`, `DELETE /_mock/faults`).
"""

from __future__ import annotations

import dataclasses
import difflib
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

from .errors import DurationError, FaultError, FaultPlanFull
from .timing import Delay, Waiter, parse_duration
from .violations import shown

__all__ = [
    "FAULT_KINDS",
    "MAX_RULES",
    "TERMINALS",
    "FaultAction",
    "FaultError",
    "FaultKind",
    "FaultPlan",
    "FaultPlanFull",
    "FaultRule",
    "parse_spec",
]

FaultKind = Literal["status", "reset", "close", "hang", "dribble"]
"""What a faulted request gets instead of the normal answer; each door renders every kind."""
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
TERMINALS: tuple[FaultKind, ...] = ("reset", "close", "hang", "dribble")
"""The kinds a rule names by a flag (`reset=True`); `status` is given by its number."""
NO_ANSWER: tuple[FaultKind, ...] = ("reset", "close", "hang")
"""The kinds that end without any HTTP answer."""
_STEP_KINDS: dict[str, FaultKind | None] = {"normal": None, **{k: k for k in TERMINALS}}
"""A `sequence` step by name: `normal` (the normal answer) or a terminal kind."""
STATUSES = (400, 413, 429, 500, 502, 503, 504)
MAX_RULES = 100
"""The most rules a plan holds: every request is matched against each of them, so a plan
of thousands would slow every batch (20,000 rules made one take 4.5 s)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FaultRule:
    """One rule: a match, an action and how long it lasts. Validated on construction.

    Match (all given conditions must hold): `nth` (the n-th request the plan
    sees), `first` (the first N), `every` (every k-th), `rate` (a probability,
    drawn from a generator seeded with `seed`), and payload content
    (`account_id`, `client_name`, `visitor_id`, `event_key`).
    Action: `status` (500 unless another action is given), `retry_after`,
    `delay` (before the answer), or one of `reset`, `close`, `hang`, `dribble`;
    or a `sequence` of statuses and action names, one per matching request.
    Duration: `times` (None: always).
    """

    status: int | None = None
    retry_after: int | None = None
    delay: Delay | None = None
    reset: bool = False
    close: bool = False
    hang: bool = False
    dribble: bool = False
    hang_max: float = 30.0
    dribble_interval: float = 0.5
    sequence: tuple[int | str, ...] = ()
    nth: int | None = None
    first: int | None = None
    every: int | None = None
    rate: float | None = None
    seed: int | None = None
    account_id: str | None = None
    client_name: str | None = None
    visitor_id: str | None = None
    event_key: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        terminals = [name for name in TERMINALS if getattr(self, name)]
        with_status = [t for t in terminals if t != "dribble"]  # dribble sends a status slowly
        if len(terminals) > 1 or (with_status and self.status is not None):
            chosen = ", ".join(terminals + ["status"] * (self.status is not None))
            raise FaultError(f"a rule does one thing; got {chosen}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise FaultError(f"status={self.status}: a fault status is 4xx or 5xx, e.g. 503")
        for name in ("nth", "first", "every", "times"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FaultError(f"{name}={value}: must be 1 or more")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise FaultError(f"rate={self.rate}: a probability between 0 and 1, e.g. 0.1")
        for step in self.sequence:
            if not (isinstance(step, int) and 400 <= step <= 599) and step not in _STEP_KINDS:
                names = ", ".join(TERMINALS)
                raise FaultError(
                    f"sequence step {shown(step)}: use a 4xx/5xx status, normal, or {names}"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """Build from JSON-like values (`delay` as text, `sequence` as a list)."""
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1) if len(key) < 40 else []
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise FaultError(
                    f"unknown fault option {shown(key)}{hint}; options: {', '.join(names)}"
                )
            values[key] = value
        try:
            if values.get("delay") is not None and not isinstance(values["delay"], Delay):
                values["delay"] = Delay.parse(values["delay"])
            for key in ("hang_max", "dribble_interval"):
                if key in values:
                    values[key] = parse_duration(values[key])
            if "sequence" in values:
                values["sequence"] = tuple(_step(s) for s in values["sequence"])
            for key in ("status", "retry_after", "nth", "first", "every", "seed", "times"):
                if values.get(key) is not None:
                    values[key] = _whole(key, values[key])
            if values.get("rate") is not None:
                values["rate"] = float(values["rate"])
            for key in TERMINALS:
                if key in values:
                    values[key] = values[key] in (True, "true", "1", 1, "")
        except DurationError as exc:
            raise FaultError(str(exc)) from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise FaultError(f"bad fault rule {shown(data)}: {exc}") from exc
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Only what differs from the defaults, in JSON types."""
        result: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value == field.default or (field.default is dataclasses.MISSING and not value):
                continue
            if isinstance(value, Delay):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            result[field.name] = value
        return result

    def matches_content(self, payload: Any) -> bool:
        wanted = {"account_id": self.account_id, "client_name": self.client_name}
        for name, value in wanted.items():
            if value is not None and (not isinstance(payload, dict) or payload.get(name) != value):
                return False
        if self.visitor_id is None and self.event_key is None:
            return True
        visitors = payload.get("visitors") if isinstance(payload, dict) else None
        if not isinstance(visitors, list):
            return False
        return any(_visitor_matches(v, self.visitor_id, self.event_key) for v in visitors)


def _whole(name: str, value: Any) -> int:
    """A whole number below 2**63 from an int, an integral float or a digit string."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isascii():
        value = int(value.strip()) if value.strip().lstrip("-").isdigit() else value
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise FaultError(f"bad fault rule: {name}={shown(value)} is not a whole number, e.g. 2")
    return value


def _step(step: Any) -> int | str:
    """A sequence step: a status (as a number or digits) or an action name."""
    if isinstance(step, str) and step.isascii() and step.isdigit() and len(step) < 4:
        return int(step)
    if isinstance(step, int | str) and not isinstance(step, bool):
        return step
    raise FaultError(f"sequence step {shown(step)}: use a 4xx/5xx status, normal, or an action")


def _visitor_matches(visitor: Any, visitor_id: str | None, event_key: str | None) -> bool:
    if not isinstance(visitor, dict):
        return False
    if visitor_id is not None and visitor.get("visitor_id") != visitor_id:
        return False
    if event_key is None:
        return True
    snapshots = visitor.get("snapshots")
    for snapshot in snapshots if isinstance(snapshots, list) else []:
        events = snapshot.get("events") if isinstance(snapshot, dict) else None
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict) and event.get("key") == event_key:
                return True
    return False


@dataclasses.dataclass(frozen=True)
class FaultAction:
    """What one request gets: an optional delay, then an optional terminal fault."""

    rule_id: int
    seed: int | None
    delay: float = 0.0
    kind: FaultKind | None = None  # None: the normal answer (maybe late)
    status: int | None = None
    retry_after: int | None = None
    hang_max: float = 30.0
    dribble_interval: float = 0.5

    @property
    def faulted(self) -> bool:
        """True when the client does not get the normal answer (its events do not count)."""
        return self.kind is not None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.rule_id, "kind": self.kind or "delay"}
        if self.delay:
            data["delay_ms"] = round(self.delay * 1000, 3)
        for name in ("status", "retry_after", "seed"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


@dataclasses.dataclass
class _Slot:
    id: int
    rule: FaultRule
    rng: random.Random
    seed: int
    fired: int = 0


class FaultPlan:
    """An ordered list of rules, consulted once per request; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._seen = 0
        self._next_id = 1
        self._waiters: set[Waiter] = set()

    def __repr__(self) -> str:
        return f"<FaultPlan rules={len(self._slots)} seen={self._seen}>"

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, rule: FaultRule | None = None, **options: Any) -> int:
        """Append a rule (a FaultRule, or its options as keywords); returns its id."""
        rule = rule if rule is not None else FaultRule.from_dict(options)
        seed = rule.seed if rule.seed is not None else random.SystemRandom().randrange(2**32)
        with self._lock:
            if len(self._slots) >= MAX_RULES:
                raise FaultPlanFull(
                    f"the fault plan already holds {MAX_RULES} rules, the most it takes; "
                    "remove some (DELETE /_mock/faults clears the plan) or merge them"
                )
            slot = _Slot(self._next_id, rule, random.Random(seed), seed)
            self._next_id += 1
            self._slots.append(slot)
            return slot.id

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self._slots = [s for s in self._slots if s.id != rule_id]

    def replace(self, rules: list[FaultRule]) -> list[int]:
        """Clear the plan (cancelling pending delays) and add `rules`."""
        if len(rules) > MAX_RULES:
            raise FaultError(f"{len(rules):,} fault rules: a plan takes at most {MAX_RULES}")
        self.clear()
        return [self.add(rule) for rule in rules]

    def clear(self) -> None:
        """Remove every rule, restart the request count, cancel pending delays."""
        with self._lock:
            self._slots = []
            self._seen = 0
            waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.cancel()

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
        with self._lock:
            return [
                {"id": s.id, **s.rule.to_dict(), "seed": s.seed, "fired": s.fired}
                for s in self._slots
            ]

    def waiter(self) -> Waiter:
        """A cancellable delay, registered so `clear()` can cut it short."""
        waiter = Waiter()
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def release(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def decide(self, payload: Any) -> FaultAction | None:
        """Count one request and return the action of the first rule that applies."""
        with self._lock:
            self._seen += 1
            for slot in self._slots:
                action = self._try(slot, self._seen, payload)
                if action is not None:
                    return action
        return None

    def _try(self, slot: _Slot, number: int, payload: Any) -> FaultAction | None:
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
        if rule.rate is not None and slot.rng.random() >= rule.rate:
            return None
        step = rule.sequence[slot.fired] if rule.sequence else None
        slot.fired += 1
        return self._action(slot, step)

    @staticmethod
    def _action(slot: _Slot, step: int | str | None) -> FaultAction:
        rule = slot.rule
        delay = rule.delay.sample(slot.rng) if rule.delay is not None else 0.0
        kind: FaultKind | None
        status = rule.status
        if isinstance(step, int):
            kind, status = "status", step
        elif step is not None:
            kind, status = _STEP_KINDS[step], None
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


def parse_spec(spec: str) -> FaultRule:
    """The CLI's short form: comma-separated `key=value` and bare action names.

    `status=503,times=2` · `delay=200ms` · `reset,rate=0.1,seed=42` ·
    `sequence=500:500:normal` · `hang,hang_max=10s` · `status=429,retry_after=5`
    """
    options: dict[str, Any] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            if key.isdigit():
                options["status"] = key
                continue
            options[key] = True
        elif key == "sequence":
            options[key] = [s for s in value.split(":") if s]
        else:
            options[key] = value.strip()
    if not options:
        raise FaultError("an empty fault spec; write e.g. status=503,times=2")
    return FaultRule.from_dict(options)
