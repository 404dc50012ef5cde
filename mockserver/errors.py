"""Every error logx-mock raises on purpose, under one base: catch `LogxMockError` for all.

    LogxMockError
    ├── ConfigError (ValueError) ... a setting that cannot be used; `setting` names it
    │   ├── FaultError ............. a fault rule or spec that cannot be understood
    │   │   ├── DurationError ...... a duration or a delay that cannot be read
    │   │   └── FaultPlanFull ...... the plan already holds its most rules
    │   └── DatafileError .......... a datafile that cannot be read
    ├── DecodeError ................ a request body that is not one JSON value
    ├── JournalError ............... the journal cannot open, record or read
    ├── CAError .................... the local CA cannot be made or used
    └── NoTransportError (RuntimeError)  the ASGI server hides the socket a fault needs

Messages speak the library's terms: a setting by its library name (`admin token`,
`max_requests`), a journal by its path. The command line says which flag to change
instead (`--admin-token`, `--db`); the pytest plugin names its own options.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CAError",
    "ConfigError",
    "DatafileError",
    "DecodeError",
    "DurationError",
    "FaultError",
    "FaultPlanFull",
    "JournalError",
    "LogxMockError",
    "NoTransportError",
]


class LogxMockError(Exception):
    """The base of every error logx-mock raises on purpose; the message says what to do."""


class ConfigError(LogxMockError, ValueError):
    """A setting that cannot be used.

    `setting` is its library name (`admin token`, `trusted proxy`), or None when the message
    names what is wrong by itself; `problem` is the message without that name, so a front
    end can put its own name for the setting first (`--admin-token must be ...`).
    """

    def __init__(self, problem: str, *, setting: str | None = None) -> None:
        super().__init__(f"{setting} {problem}" if setting else problem)
        self.problem = problem
        self.setting = setting


class FaultError(ConfigError):
    """A fault rule or spec that cannot be understood; the message says how to write it."""


class DurationError(FaultError):
    """A duration that cannot be read; the message shows how to write one."""


class FaultPlanFull(FaultError):
    """The plan already holds `faults.MAX_RULES` rules."""


class DatafileError(ConfigError):
    """A datafile that cannot be read; the message names the file and the bad part."""


class DecodeError(LogxMockError):
    """The body cannot be read as one JSON value; `too_large` means past the limit."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


JournalCause = Literal["open", "folder", "damaged", "version", "busy", "write", "missing"]


class JournalError(LogxMockError):
    """The journal cannot record or read.

    `cause` says why (`open`, `folder`, `damaged`, `version`, `busy`, `write`, `missing`) so a
    front end can name its own fix; `message` is what went wrong, `fix` the library's advice.
    """

    def __init__(
        self, message: str, *, cause: JournalCause = "write", fix: str | None = None
    ) -> None:
        super().__init__(f"{message}; {fix}" if fix else message)
        self.message = message
        self.cause: JournalCause = cause
        self.fix = fix


class CAError(LogxMockError):
    """The CA cannot be made or used; the message says what to do."""


class NoTransportError(LogxMockError, RuntimeError):
    """The ASGI server does not expose its transport; the fault cannot be rendered exactly."""
