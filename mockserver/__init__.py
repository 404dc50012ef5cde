"""logx-mock: a local emulator of Optimizely's Event API Log Endpoint.

The public API is what `__all__` lists, and every name a user touches is in it (the
pytest plugin, `pytest_plugin`, imports nothing else from here); everything else is
private, whatever its spelling. tests/test_exports.py pins the list both ways.
`PostgresJournal` is imported when first named, so the PostgreSQL driver stays optional.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .anonymize import ClientAddress, TrustedProxies, anonymize_ip
from .batch import FIELDS as BATCH_FIELDS
from .cdn import DATAFILE_HOSTS
from .contract.crosscheck import DATAFILE_RULES, crosscheck
from .contract.datafile import Datafile, Datafiles, Experiment
from .contract.decoding import MAX_BODY_BYTES, Decoded, decode_body
from .contract.flatten import flatten
from .contract.validation import ERROR_RULES, WARNING_RULES, validate
from .endpoint import EVENTS_PATH, Endpoint, EndpointConfig, is_strict
from .errors import (
    CAError,
    ConfigError,
    DatafileError,
    DecodeError,
    DurationError,
    FaultError,
    FaultPlanFull,
    JournalError,
    LogxMockError,
    NoTransportError,
)
from .fault_plan import FaultPlan, PlanStore
from .faults import FAULT_KINDS, FaultAction, FaultKind, FaultRule, parse_spec, rule_from
from .journal.base import EVENT_FILTERS, MAX_LIMIT, Journal
from .journal.memory import MemoryJournal
from .journal.opening import open_journal
from .journal.results import Results, Uncounted, journal_results
from .journal.sqlite import SqliteJournal
from .model import (
    REFUSED,
    VERDICTS,
    CompactEvents,
    CoreRequest,
    EventRecord,
    Outcome,
    RequestRecord,
    Verdict,
)
from .serve.server import ThreadedServer
from .serve.settings import ServeSettings
from .timing import Delay, Waiter
from .violations import Report, Violation
from .web.app import LogxApp, create_app
from .web.guard import GuardConfig
from .web.protocol import ServerLimits

if TYPE_CHECKING:
    from .journal.postgres import PostgresJournal

__version__ = "0.1.0"

__all__ = [
    "BATCH_FIELDS",
    "DATAFILE_HOSTS",
    "DATAFILE_RULES",
    "ERROR_RULES",
    "EVENTS_PATH",
    "EVENT_FILTERS",
    "FAULT_KINDS",
    "MAX_BODY_BYTES",
    "MAX_LIMIT",
    "REFUSED",
    "VERDICTS",
    "WARNING_RULES",
    "CAError",
    "ClientAddress",
    "CompactEvents",
    "ConfigError",
    "CoreRequest",
    "Datafile",
    "DatafileError",
    "Datafiles",
    "DecodeError",
    "Decoded",
    "Delay",
    "DurationError",
    "Endpoint",
    "EndpointConfig",
    "EventRecord",
    "Experiment",
    "FaultAction",
    "FaultError",
    "FaultKind",
    "FaultPlan",
    "FaultPlanFull",
    "FaultRule",
    "GuardConfig",
    "Journal",
    "JournalError",
    "LogxApp",
    "LogxMockError",
    "MemoryJournal",
    "NoTransportError",
    "Outcome",
    "PlanStore",
    "PostgresJournal",
    "Report",
    "RequestRecord",
    "Results",
    "ServeSettings",
    "ServerLimits",
    "SqliteJournal",
    "ThreadedServer",
    "TrustedProxies",
    "Uncounted",
    "Verdict",
    "Violation",
    "Waiter",
    "__version__",
    "anonymize_ip",
    "create_app",
    "crosscheck",
    "decode_body",
    "flatten",
    "is_strict",
    "journal_results",
    "open_journal",
    "parse_spec",
    "rule_from",
    "validate",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresJournal":  # needs psycopg: `pip install 'logx-mock[postgres]'`
        from .journal.postgres import PostgresJournal

        return PostgresJournal
    raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
