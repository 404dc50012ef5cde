"""The public API is pinned: adding or removing an export is a deliberate change.

Both ways, as httpx's tests/test_exported_members.py: every name in `__all__` is there,
and every public name the package holds (not a submodule) is in `__all__`. And every class
of ours that a public function, method or field takes or returns is exported too, so a
user never needs a private module to name what they hold.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest

import mockserver
import pytest_plugin


def test_mockserver_exports() -> None:
    assert sorted(mockserver.__all__) == sorted(
        [
            "DATAFILE_HOSTS",
            "ERROR_RULES",
            "FAULT_KINDS",
            "WARNING_RULES",
            "Decoded",
            "Delay",
            "Experiment",
            "FaultAction",
            "FaultKind",
            "FaultPlan",
            "FaultRule",
            "GuardConfig",
            "PlanStore",
            "PostgresJournal",
            "Results",
            "ServeSettings",
            "ServerLimits",
            "Uncounted",
            "Waiter",
            "journal_results",
            "open_journal",
            "parse_spec",
            "rule_from",
            "ConfigError",
            "DurationError",
            "FaultError",
            "FaultPlanFull",
            "LogxMockError",
            "NoTransportError",
            "CAError",
            "BATCH_FIELDS",
            "DATAFILE_RULES",
            "EVENTS_PATH",
            "EVENT_FILTERS",
            "MAX_BODY_BYTES",
            "MAX_LIMIT",
            "REFUSED",
            "VERDICTS",
            "ClientAddress",
            "CoreRequest",
            "Datafile",
            "DatafileError",
            "Datafiles",
            "DecodeError",
            "Endpoint",
            "EndpointConfig",
            "CompactEvents",
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
            "Attempt",
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


@pytest.mark.parametrize("package", [mockserver, pytest_plugin], ids=lambda p: p.__name__)
def test_every_public_name_is_exported_and_every_export_is_there(package: Any) -> None:
    held = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    held -= {"annotations", "TYPE_CHECKING", "Any", "pytest"}  # the module's own imports
    assert held == set(package.__all__) - {"__version__", "PostgresJournal"}
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert sorted(package.__all__, key=str.casefold) == sorted(
        set(package.__all__), key=str.casefold
    )


def test_postgres_journal_is_imported_when_named() -> None:
    from mockserver.journal.postgres import PostgresJournal

    assert mockserver.PostgresJournal is PostgresJournal
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        mockserver.nothing  # noqa: B018


def _ours(kind: Any) -> bool:
    return isinstance(kind, type) and kind.__module__.split(".")[0] in (
        "mockserver",
        "pytest_plugin",
    )


def _classes_in(hint: Any) -> set[type]:
    found = {hint} if _ours(hint) else set()
    for arg in typing.get_args(hint):
        found |= _classes_in(arg)
    return found


def _public_signatures() -> dict[str, Any]:
    """Every exported function, and every public method, property and field of an exported
    class: name -> the callable or class whose type hints a user meets."""
    found: dict[str, Any] = {}
    for package in (mockserver, pytest_plugin):
        for name in package.__all__:
            value = getattr(package, name)
            if inspect.isfunction(value):
                found[name] = value
            elif inspect.isclass(value) and _ours(value):
                found[name] = value  # its fields
                for attr, member in vars(value).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if isinstance(member, property):
                        member = member.fget
                    if isinstance(member, staticmethod | classmethod):
                        member = member.__func__
                    if inspect.isfunction(member):
                        found[f"{name}.{attr}"] = member
    return found


def test_every_class_a_user_meets_is_exported() -> None:
    exported = {id(getattr(p, n)) for p in (mockserver, pytest_plugin) for n in p.__all__}
    names = {**vars(mockserver), **vars(pytest_plugin)}
    unexported: dict[str, list[str]] = {}
    signatures = _public_signatures()
    assert len(signatures) > 100
    for where, value in signatures.items():
        hints = typing.get_type_hints(value, localns=names)
        for attr, hint in hints.items():
            if inspect.isclass(value) and attr.startswith("_"):
                continue
            for kind in _classes_in(hint):
                if id(kind) not in exported:
                    unexported.setdefault(f"{kind.__module__}.{kind.__qualname__}", []).append(
                        where
                    )
    assert not unexported, f"classes in the public API but not exported: {unexported}"


def test_public_classes_have_readable_reprs() -> None:
    journal = mockserver.MemoryJournal()
    endpoint = mockserver.Endpoint(journal)
    assert repr(journal) == "<MemoryJournal requests=0 last_id=0>"
    assert repr(endpoint) == "<Endpoint journal=<MemoryJournal requests=0 last_id=0>>"
    assert repr(mockserver.ThreadedServer(endpoint)) == "<ThreadedServer stopped>"
    assert repr(pytest_plugin.LogxHandle(endpoint)) == (
        "<LogxHandle <MemoryJournal requests=0 last_id=0>>"
    )
