"""The plugin's options: ini keys for suite defaults, `logx` markers closest-wins."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from mockserver import (
    DATAFILE_RULES,
    WARNING_RULES,
    Datafile,
    DatafileError,
    FaultError,
    FaultRule,
    rule_from,
)

__all__ = ["INI_KEYS", "LogxOptions", "load_datafiles", "merge_markers"]


def _fault_rule(item: Any) -> FaultRule:
    try:
        return rule_from(item)
    except FaultError as exc:
        raise pytest.UsageError(f"logx option faults: {exc}") from exc


def load_datafiles(value: Any, root: Path) -> tuple[Datafile, ...]:
    """Datafiles from what a marker or the ini file gives: a path (relative to the
    rootdir), the datafile's JSON text or parsed dict (what the SDK is given), a
    `Datafile`, or a list of those; None or [] for none."""
    items = value if isinstance(value, list | tuple) else [] if value is None else [value]
    try:
        return tuple(_datafile(item, root) for item in items)
    except DatafileError as exc:
        raise pytest.UsageError(f"logx option datafile: {exc}") from exc


def _datafile(item: Any, root: Path) -> Datafile:
    if isinstance(item, Datafile):
        return item
    if isinstance(item, Mapping):
        return Datafile.from_dict(dict(item), source="the datafile given to logx")
    if isinstance(item, str) and item.lstrip().startswith("{"):
        return Datafile.from_json(item, source="the datafile given to logx")
    if isinstance(item, str | os.PathLike):
        return Datafile.load(root / Path(item))  # an absolute path stays as it is
    raise pytest.UsageError(
        f"logx option datafile: {item!r} is not a datafile; give a path, the datafile's "
        "JSON text or dict, or a list of them"
    )


WARNINGS = (*WARNING_RULES, *DATAFILE_RULES)
"""Every rule `expect_warnings` may name."""


def _warning_rules(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise pytest.UsageError(
            f"logx option expect_warnings={value!r}: give a list of warning rules, "
            "e.g. ['unknown_event']"
        )
    for rule in items:
        if rule not in WARNINGS:
            close = difflib.get_close_matches(str(rule), WARNINGS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise pytest.UsageError(
                f"logx option expect_warnings: unknown warning rule {rule!r}{hint}; "
                f"rules: {', '.join(WARNINGS)}"
            )
    return tuple(items)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LogxOptions:
    """What a test asks of the mock.

    strict: answer every request as if it carried `X-Optimizely-Strict: true`
        (400 for a batch production would silently drop).
    allow_rejected: skip the teardown check that fails the test when a request
        would have been rejected.
    faults: fault rules for the test, as dicts (`{"status": 503, "times": 2}`) or
        CLI specs (`"reset,rate=0.1,seed=42"`).
    datafile: the project's datafile(s) to check every batch against: paths (relative
        to the rootdir), JSON text or dicts (see `load_datafiles`).
    expect_warnings: warning rules the test means to provoke (`["unknown_event"]`): the
        test fails unless each one comes, and they are not reported as DatafileWarning.
    """

    strict: bool = False
    allow_rejected: bool = False
    faults: tuple[FaultRule, ...] = ()
    datafile: tuple[Datafile, ...] = ()
    expect_warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("strict", "allow_rejected"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise pytest.UsageError(f"logx option {name}={value!r} must be True or False")
        if not isinstance(self.faults, list | tuple):
            raise pytest.UsageError(f"logx option faults={self.faults!r} must be a list of rules")
        object.__setattr__(self, "faults", tuple(_fault_rule(f) for f in self.faults))
        if not all(isinstance(d, Datafile) for d in self.datafile):
            raise pytest.UsageError("logx option datafile: give paths, JSON text or dicts")
        object.__setattr__(self, "expect_warnings", _warning_rules(self.expect_warnings))

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
DATAFILE_INI = "logx_datafile"
DATAFILE_HELP = "datafile path(s), relative to the ini file, to check every batch against"
DB_INI = "logx_db"
DB_HELP = (
    "the journal of logx_server: a PostgreSQL URL postgresql://user:pass@host:port/db shared "
    "with `logx-mock serve --db URL` instances running elsewhere, or a SQLite file relative to "
    "the ini file (default: in memory)"
)


def from_ini(config: pytest.Config) -> LogxOptions:
    """The suite defaults from the ini file."""
    changes: dict[str, Any] = {
        option: bool(config.getini(key)) for key, (_, option) in INI_KEYS.items()
    }
    changes["datafile"] = load_datafiles(config.getini(DATAFILE_INI), config.rootpath)
    return LogxOptions().updated(changes, where="the ini file")


def merge_markers(
    base: LogxOptions, markers: Iterable[pytest.Mark], root: Path | None = None
) -> LogxOptions:
    """Apply `logx` markers, closest first (as `iter_markers` yields them): the
    closest marker that names an option wins. Relative datafile paths are resolved
    against `root` (the rootdir)."""
    chosen: dict[str, Any] = {}
    for mark in markers:
        if mark.args:
            raise pytest.UsageError(
                "@pytest.mark.logx takes keyword arguments only, e.g. "
                "@pytest.mark.logx(strict=True)"
            )
        for name, value in mark.kwargs.items():
            chosen.setdefault(name, value)
    if "datafile" in chosen:
        chosen["datafile"] = load_datafiles(chosen["datafile"], root or Path.cwd())
    return base.updated(chosen, where="@pytest.mark.logx")
