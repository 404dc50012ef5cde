"""What validation finds: one `Violation` per finding, gathered in a `Report`.

The report is computed once per request; the verdict, the HTTP status and every
message are all derived from it, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_VIOLATIONS", "Report", "Violation", "describe", "json_type", "shown"]

_MAX_SHOWN = 120
MAX_VIOLATIONS = 1_000
"""The most errors (and warnings, and notes) a report lists; one more says the rest were
left off. 150,000 events of `{}` would otherwise make 46 MB of findings per request."""


@dataclass(frozen=True)
class Violation:
    """One finding at one JSON path.

    `rule` is a stable machine name (see the README's rule table), `message` a
    sentence for people, `expected` what the contract wants and `actual` what
    arrived (long strings and containers are summarised).
    """

    path: str
    rule: str
    message: str
    expected: str | None = None
    actual: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Violation:
        return cls(
            path=data["path"],
            rule=data["rule"],
            message=data["message"],
            expected=data.get("expected"),
            actual=data.get("actual"),
        )

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


@dataclass
class Report:
    """Errors make a request unusable; warnings and notes never change the status."""

    errors: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    notes: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing makes the batch unusable."""
        return not self.errors

    def error(self, path: str, rule: str, message: str, expected: str | None, actual: Any) -> None:
        if _room(self.errors, "errors"):
            self.errors.append(Violation(path, rule, message, expected, describe(actual)))

    def warn(self, path: str, rule: str, message: str, expected: str | None, actual: Any) -> None:
        if _room(self.warnings, "warnings"):
            self.warnings.append(Violation(path, rule, message, expected, describe(actual)))

    def note(self, path: str, rule: str, message: str) -> None:
        if _room(self.notes, "notes"):
            self.notes.append(Violation(path, rule, message))

    def __repr__(self) -> str:
        return (
            f"Report(errors={len(self.errors)}, warnings={len(self.warnings)}, "
            f"notes={len(self.notes)})"
        )


def _room(found: list[Violation], name: str) -> bool:
    """Whether `found` takes one more; at the cap, it gets the one that says so."""
    if len(found) < MAX_VIOLATIONS:
        return True
    if len(found) == MAX_VIOLATIONS:
        found.append(
            Violation(
                "$",
                "too_many",
                f"more than {MAX_VIOLATIONS:,} {name}: the rest are not listed (fix these first)",
            )
        )
    return False


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (`integer` and `number` kept apart)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any) -> Any:
    """A value fit to show in a violation: scalars as they are, the rest summarised."""
    if isinstance(value, str) and len(value) > _MAX_SHOWN:
        return value[:_MAX_SHOWN] + f"… ({len(value)} characters)"
    if isinstance(value, list):
        return f"<array of {len(value)} items>"
    if isinstance(value, dict):
        return f"<object with {len(value)} keys>"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return f"<integer of {len(str(abs(value)))} digits>"
    return value


def shown(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to about `limit` characters, for error messages: a message must
    name the bad value but never echo a megabyte of it back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...{text[-5:]} ({len(text):,} characters)"
