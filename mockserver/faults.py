"""Fault rules: what makes the endpoint fail on purpose, repeatably, and what it does.

A rule is one flat dict, the same from the CLI (`--fault status=503,times=2`), the
admin API (`POST /_mock/faults`) and pytest (`handle.faults.add(status=503,
times=2)`). A `FaultAction` is one decision, as data ("wait 0.2 s, then reset the
connection") that each door renders its own way. The plan that holds the rules and
decides is `fault_plan.FaultPlan`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, Literal, get_args

from .batch import VisitorAt, walk
from .errors import DurationError, FaultError, FaultPlanFull
from .model import truthy
from .timing import Delay, parse_duration
from .violations import shown

__all__ = [
    "FAULT_KINDS",
    "MAX_RULES",
    "TERMINALS",
    "FaultAction",
    "FaultError",
    "FaultKind",
    "FaultPlanFull",
    "FaultRule",
    "parse_spec",
    "rule_from",
    "rules_from",
]

FaultKind = Literal["status", "reset", "close", "hang", "dribble"]
"""What a faulted request gets instead of the normal answer; each door renders every kind."""
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
TERMINALS: tuple[FaultKind, ...] = ("reset", "close", "hang", "dribble")
"""The kinds a rule names by a flag (`reset=True`); `status` is given by its number."""
NO_ANSWER: tuple[FaultKind, ...] = ("reset", "close", "hang")
"""The kinds that end without any HTTP answer."""
STEP_KINDS: dict[str, FaultKind | None] = {"normal": None, **{k: k for k in TERMINALS}}
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
            if not (isinstance(step, int) and 400 <= step <= 599) and step not in STEP_KINDS:
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
                    values[key] = values[key] == "" or truthy(values[key])  # `reset=`
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
        """Whether the batch has what the rule's content conditions name (all of them)."""
        content = (self.account_id, self.client_name, self.visitor_id, self.event_key)
        if content == (None, None, None, None):
            return True
        batch = walk(payload)
        wanted = {"account_id": self.account_id, "client_name": self.client_name}
        for name, value in wanted.items():
            if value is not None and (not batch.is_object or batch.get(name) != value):
                return False
        if self.visitor_id is None and self.event_key is None:
            return True
        return any(self._visitor_matches(visitor) for visitor in batch.visitors)

    def _visitor_matches(self, visitor: VisitorAt) -> bool:
        if not visitor.is_object:
            return False
        if self.visitor_id is not None and visitor.get("visitor_id") != self.visitor_id:
            return False
        if self.event_key is None:
            return True
        return any(
            event.is_object and event.get("key") == self.event_key
            for snapshot in visitor.snapshots
            for event in snapshot.events
        )


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


def rule_from(item: FaultRule | str | Mapping[str, Any]) -> FaultRule:
    """A rule as a user wrote it: a `FaultRule`, a spec (`status=503,times=2`) or its options
    as a dict (JSON); a `FaultError` says how to write it otherwise."""
    if isinstance(item, FaultRule):
        return item
    if isinstance(item, str):
        return parse_spec(item)
    if isinstance(item, Mapping):
        return FaultRule.from_dict(dict(item))
    raise FaultError(
        f"{shown(item)} is not a fault rule; give its options as an object, or a spec "
        "such as 'status=503,times=2'"
    )


def rules_from(data: Any, *, source: str) -> list[FaultRule]:
    """Rules from JSON: a list of rules, or `{"rules": [...]}` (a faults file, `PUT
    /_mock/faults`); `source` names where they came from in the error."""
    items = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise FaultError(f'{source}: give a JSON list of rules, or {{"rules": [rule, ...]}}')
    return [rule_from(item) for item in items]


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
