"""The CI verdict: which journaled requests fail a check, why, and what each is called.

A request fails when its verdict is one of `fail_on` (by default every verdict
production would drop or refuse), or when `warnings` is in `fail_on` and it has
warnings. Its failure carries every violation with its JSON path. A request is named
by its client, visitors and event keys, so a CI system's list of failed tests says
which traffic it was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..model import REFUSED, VERDICTS, RequestRecord
from ..violations import Violation

__all__ = [
    "DEFAULT_FAIL_ON",
    "FAIL_ON_CHOICES",
    "CheckResult",
    "Failure",
    "case_name",
    "client_of",
    "failure_of",
    "parse_fail_on",
]

FAIL_ON_CHOICES: tuple[str, ...] = (*(v for v in VERDICTS if v != "accepted"), "warnings")
"""What `--fail-on` takes: a verdict other than accepted, or `warnings`."""
DEFAULT_FAIL_ON: tuple[str, ...] = REFUSED
"""Every verdict production would drop or refuse (a fault is asked for by the test)."""
_SHOWN = 3


def parse_fail_on(text: str) -> tuple[str, ...]:
    """`rejected,warnings` -> ("rejected", "warnings"); ConfigError names a bad item."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    unknown = [item for item in items if item not in FAIL_ON_CHOICES]
    if unknown or not items:
        raise ConfigError(
            f"--fail-on {text!r}: {', '.join(unknown) or 'nothing'} is not a choice; "
            f"give a comma-separated list of {', '.join(FAIL_ON_CHOICES)}"
        )
    return items


@dataclass(frozen=True)
class Failure:
    """Why one request fails the check: what matched (`rejected`, `warnings`, ...) and
    every violation behind it."""

    reasons: tuple[str, ...]
    violations: tuple[tuple[str, Violation], ...]
    """(`error` or `warning`, violation), in the order the journal has them."""
    note: str = ""
    """What else there is to say (a fault that was injected, a body that was not kept)."""

    @property
    def message(self) -> str:
        """One line: what matched and the first violation."""
        count = len(self.violations)
        first = f": {self.violations[0][1]}" if self.violations else ""
        more = f" (and {count - 1} more)" if count > 1 else ""
        return f"{', '.join(self.reasons)}{first}{more}{self.note}"

    def lines(self) -> list[str]:
        """Every violation, one per line, with its path and rule."""
        found = [f"{kind:<7} {v.path}: {v.message} [{v.rule}]" for kind, v in self.violations]
        return found + ([self.note.strip("; ")] if self.note else [])


def failure_of(record: RequestRecord, fail_on: Sequence[str]) -> Failure | None:
    """Why `record` fails a check on `fail_on`, or None when it passes."""
    reasons: list[str] = []
    violations: list[tuple[str, Violation]] = []
    if record.verdict in fail_on:
        reasons.append(record.verdict)
        violations += [("error", v) for v in record.errors]
    if "warnings" in fail_on and record.warnings:
        reasons.append("warnings")
        violations += [("warning", v) for v in record.warnings]
    if not reasons:
        return None
    note = ""
    if record.verdict == "faulted" and record.fault:
        note = f"; fault injected by rule #{record.fault.get('rule')} ({record.fault.get('kind')})"
    return Failure(tuple(reasons), tuple(violations), note)


def client_of(record: RequestRecord) -> str:
    """`python-sdk 5.7.0`, from the batch (or what it can be called without one)."""
    payload = record.payload if isinstance(record.payload, dict) else {}
    parts = [payload.get("client_name"), payload.get("client_version")]
    named = " ".join(str(p) for p in parts if isinstance(p, str | int) and str(p))
    return named or "unknown client"


def _listed(values: Iterable[object]) -> str:
    seen: list[str] = []
    for value in values:
        text = str(value)
        if text not in seen:
            seen.append(text)
    shown = ", ".join(seen[:_SHOWN])
    return shown + (f" +{len(seen) - _SHOWN} more" if len(seen) > _SHOWN else "")


def case_name(record: RequestRecord) -> str:
    """`#12 python-sdk 5.7.0, visitor alice: purchase, campaign_activated`."""
    name = f"#{record.id} {client_of(record)}"
    if record.events:
        visitors = _listed(e.visitor_id for e in record.events)
        keys = _listed(e.key if e.key not in (None, "") else e.entity_key for e in record.events)
        return f"{name}, visitor {visitors}: {keys}"
    if record.verdict == "not_found":
        return f"{name}: not_found, {record.method} {record.path}"
    return f"{name}: {record.verdict}, no events"


@dataclass
class CheckResult:
    """The counts of a check, and the first failures (for the text summary)."""

    fail_on: tuple[str, ...]
    total: int = 0
    failed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    with_warnings: int = 0
    first_id: int | None = None
    last_id: int | None = None
    shown: list[tuple[str, Failure]] = field(default_factory=list)
    """The first `keep` failures, by case name."""
    keep: int = 10

    def add(self, record: RequestRecord, failure: Failure | None) -> None:
        """Count one request (and keep its failure if it is among the first few)."""
        self.total += 1
        self.verdicts[record.verdict] += 1
        self.with_warnings += bool(record.warnings)
        self.first_id = record.id if self.first_id is None else self.first_id
        self.last_id = record.id
        if failure is not None:
            self.failed += 1
            if len(self.shown) < self.keep:
                self.shown.append((case_name(record), failure))

    @property
    def ok(self) -> bool:
        return self.failed == 0
