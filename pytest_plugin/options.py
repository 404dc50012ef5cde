"""The plugin's options: ini keys for suite defaults, `logx` markers closest-wins."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from mockserver.faults import FaultError, FaultRule, parse_spec

__all__ = ["INI_KEYS", "LogxOptions", "merge_markers"]


def _fault_rule(item: Any) -> FaultRule:
    try:
        if isinstance(item, FaultRule):
            return item
        if isinstance(item, str):
            return parse_spec(item)
        if isinstance(item, Mapping):
            return FaultRule.from_dict(dict(item))
    except FaultError as exc:
        raise pytest.UsageError(f"logx option faults: {exc}") from exc
    raise pytest.UsageError(
        f"logx option faults: {item!r} is not a rule; give dicts or specs such as 'status=503'"
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class LogxOptions:
    """What a test asks of the mock.

    strict: answer every request as if it carried `X-Optimizely-Strict: true`
        (400 for a batch production would silently drop).
    allow_rejected: skip the teardown check that fails the test when a request
        would have been rejected.
    faults: fault rules for the test, as dicts (`{"status": 503, "times": 2}`) or
        CLI specs (`"reset,rate=0.1,seed=42"`).
    """

    strict: bool = False
    allow_rejected: bool = False
    faults: tuple[FaultRule, ...] = ()

    def __post_init__(self) -> None:
        for name in ("strict", "allow_rejected"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise pytest.UsageError(f"logx option {name}={value!r} must be True or False")
        if not isinstance(self.faults, list | tuple):
            raise pytest.UsageError(f"logx option faults={self.faults!r} must be a list of rules")
        object.__setattr__(self, "faults", tuple(_fault_rule(f) for f in self.faults))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def updated(self, changes: Mapping[str, Any], *, where: str) -> LogxOptions:
        """A copy with `changes`; an unknown name fails with the closest known one."""
        for name in changes:
            if name not in self.names():
                close = difflib.get_close_matches(name, self.names(), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise pytest.UsageError(
                    f"unknown logx option {name!r} in {where}{hint} "
                    f"(options: {', '.join(self.names())})"
                )
        return dataclasses.replace(self, **changes)


INI_KEYS = {
    "logx_strict": ("treat every request to the mock as X-Optimizely-Strict: true", "strict"),
    "logx_allow_rejected": ("do not fail tests whose requests would be rejected", "allow_rejected"),
}


def from_ini(config: pytest.Config) -> LogxOptions:
    """The suite defaults from the ini file."""
    changes = {option: bool(config.getini(key)) for key, (_, option) in INI_KEYS.items()}
    return LogxOptions().updated(changes, where="the ini file")


def merge_markers(base: LogxOptions, markers: Iterable[pytest.Mark]) -> LogxOptions:
    """Apply `logx` markers, closest first (as `iter_markers` yields them): the
    closest marker that names an option wins."""
    chosen: dict[str, Any] = {}
    for mark in markers:
        if mark.args:
            raise pytest.UsageError(
                "@pytest.mark.logx takes keyword arguments only, e.g. "
                "@pytest.mark.logx(strict=True)"
            )
        for name, value in mark.kwargs.items():
            chosen.setdefault(name, value)
    return base.updated(chosen, where="@pytest.mark.logx")
