"""The public API is pinned: adding or removing an export is a deliberate change."""

from __future__ import annotations

import mockserver
import pytest_plugin


def test_mockserver_exports() -> None:
    assert sorted(mockserver.__all__) == sorted(
        [
            "ConfigError",
            "DurationError",
            "FaultError",
            "FaultPlanFull",
            "LogxMockError",
            "NoTransportError",
            "CAError",
            "DATAFILE_RULES",
            "EVENTS_PATH",
            "EVENT_FILTERS",
            "MAX_BODY_BYTES",
            "MAX_LIMIT",
            "VERDICTS",
            "ClientAddress",
            "CoreRequest",
            "Datafile",
            "DatafileError",
            "Datafiles",
            "DecodeError",
            "Endpoint",
            "EndpointConfig",
            "EventRecord",
            "Journal",
            "JournalError",
            "LogxApp",
            "MemoryJournal",
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
    )
    for name in mockserver.__all__:
        assert hasattr(mockserver, name), name


def test_pytest_plugin_exports() -> None:
    assert sorted(pytest_plugin.__all__) == sorted(
        [
            "LOGX_HOSTS",
            "OPTIMIZELY_HOSTS",
            "DatafileWarning",
            "LeakError",
            "LogxEventDispatcher",
            "LogxHandle",
            "LogxOptions",
            "LogxTransport",
            "Mismatch",
            "ServerHandle",
            "add_logx_routes",
            "leak_guard",
            "logx_requests",
            "logx_router",
        ]
    )
    for name in pytest_plugin.__all__:
        assert hasattr(pytest_plugin, name), name


def test_public_classes_have_readable_reprs() -> None:
    journal = mockserver.MemoryJournal()
    endpoint = mockserver.Endpoint(journal)
    assert repr(journal) == "<MemoryJournal requests=0 last_id=0>"
    assert repr(endpoint) == "<Endpoint journal=<MemoryJournal requests=0 last_id=0>>"
    assert repr(mockserver.ThreadedServer(endpoint)) == "<ThreadedServer stopped>"
    assert repr(pytest_plugin.LogxHandle(endpoint)) == (
        "<LogxHandle <MemoryJournal requests=0 last_id=0>>"
    )
