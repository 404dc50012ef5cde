"""logx-mock: a local emulator of Optimizely's Event API Log Endpoint.

The public API is what `__all__` lists; everything else is private.
"""

from __future__ import annotations

from .anonymize import ClientAddress, TrustedProxies, anonymize_ip
from .contract.crosscheck import DATAFILE_RULES, crosscheck
from .contract.datafile import Datafile, Datafiles
from .contract.decoding import MAX_BODY_BYTES, decode_body
from .contract.flatten import flatten
from .contract.validation import validate
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
from .journal.base import EVENT_FILTERS, MAX_LIMIT, Journal
from .journal.memory import MemoryJournal
from .journal.sqlite import SqliteJournal
from .model import VERDICTS, CoreRequest, EventRecord, Outcome, RequestRecord, Verdict
from .serve.server import ThreadedServer
from .violations import Report, Violation
from .web.app import LogxApp, create_app

__version__ = "0.1.0"

__all__ = [
    "DATAFILE_RULES",
    "EVENTS_PATH",
    "EVENT_FILTERS",
    "MAX_BODY_BYTES",
    "MAX_LIMIT",
    "VERDICTS",
    "CAError",
    "ClientAddress",
    "ConfigError",
    "CoreRequest",
    "Datafile",
    "DatafileError",
    "Datafiles",
    "DecodeError",
    "DurationError",
    "Endpoint",
    "EndpointConfig",
    "EventRecord",
    "FaultError",
    "FaultPlanFull",
    "Journal",
    "JournalError",
    "LogxApp",
    "LogxMockError",
    "MemoryJournal",
    "NoTransportError",
    "Outcome",
    "Report",
    "RequestRecord",
    "SqliteJournal",
    "ThreadedServer",
    "TrustedProxies",
    "Verdict",
    "Violation",
    "__version__",
    "anonymize_ip",
    "create_app",
    "crosscheck",
    "decode_body",
    "flatten",
    "is_strict",
    "validate",
]
