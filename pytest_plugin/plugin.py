"""The pytest11 plugin `logx_mock`: fixtures, the `logx` marker and ini options.

Fixtures:
    logx_mock             the Optimizely hosts (events and datafiles) routed in process for
                          requests (responses) and httpx (respx, sync and async), and a
                          leak guard against every other client
    logx_transport        an httpx transport bound to the mock, nothing patched
    make_logx_server      the session's live uvicorn server (thread, 127.0.0.1:0), over
                          the journal the `logx_db` ini key names (else in memory)
    logx_server           that server, reset before each test, with its options
    logx_event_dispatcher an Optimizely SDK event dispatcher delivering to logx_server

After each test, every logx fixture checks that no request would have been
rejected by the real endpoint, unless `@pytest.mark.logx(allow_rejected=True)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from mockserver import (
    Datafiles,
    Endpoint,
    EndpointConfig,
    Journal,
    LogxMockError,
    MemoryJournal,
    ThreadedServer,
    open_journal,
)

from .dispatcher import LogxEventDispatcher
from .handle import DatafileWarning, LogxHandle, ServerHandle, datafile_warnings, summarize
from .leak_guard import (
    GUARD_INI,
    GUARD_OPTION,
    late_guard,
    late_refusals,
    leak_guard,
    threads_outliving,
)
from .options import (
    DATAFILE_HELP,
    DATAFILE_INI,
    DB_HELP,
    DB_INI,
    INI_KEYS,
    LogxOptions,
    from_ini,
    merge_markers,
)
from .requests_routes import logx_requests
from .routes import logx_router
from .transport import LogxTransport

__all__ = [
    "logx_event_dispatcher",
    "logx_mock",
    "logx_server",
    "logx_transport",
    "make_logx_server",
]

_handles_key = pytest.StashKey[list[LogxHandle]]()
_failed_key = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    for key, (help_text, _) in INI_KEYS.items():
        parser.addini(key, help_text, type="bool", default=False)
    parser.addini(DATAFILE_INI, DATAFILE_HELP, type="paths", default=[])
    parser.addini(DB_INI, DB_HELP, default="")
    parser.addini(
        GUARD_INI,
        "while logx_mock is active, stop any other client from reaching the Optimizely "
        "hosts, and after it, the threads its test left running (default true; false turns "
        "the leak guard off)",
        type="bool",
        default=True,
    )
    parser.getgroup("logx-mock").addoption(
        GUARD_OPTION,
        action="store_true",
        help=f"turn logx_mock's leak guard off (as {GUARD_INI} = false does)",
    )


_late_guard_key = pytest.StashKey[contextlib.ExitStack]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "logx(strict=False, allow_rejected=False, faults=[], datafile=None, expect_warnings=[]): "
        "options for the logx-mock fixtures; module, class and test markers merge, the closest "
        "wins",
    )
    if _guarded(config):  # installed before any test patches a socket function, removed last
        stack = contextlib.ExitStack()
        stack.enter_context(late_guard())
        config.stash[_late_guard_key] = stack


def pytest_terminal_summary(terminalreporter: Any) -> None:
    refused = late_refusals()
    if refused:
        terminalreporter.section("logx-mock leak guard")
        terminalreporter.line(
            f"{len(refused)} connection(s) to Optimizely stopped after their test ended: the "
            "Optimizely SDK sends from its own thread; close the client (it flushes) or "
            "call logx_mock.wait_for_events(...) before the test ends"
        )
        for line in refused:
            terminalreporter.line(f"  {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_late_guard_key, None)
    if stack is not None:
        stack.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_failed_key] = True
        for handle in item.stash.get(_handles_key, []):
            report.sections.append(("logx-mock journal", summarize(handle.requests)))
    return report


def _options(request: pytest.FixtureRequest) -> LogxOptions:
    config = request.config
    return merge_markers(from_ini(config), request.node.iter_markers("logx"), config.rootpath)


def _config(options: LogxOptions) -> EndpointConfig:
    return EndpointConfig(force_strict=options.strict, datafiles=Datafiles(options.datafile))


def _checked(
    request: pytest.FixtureRequest, handle: LogxHandle, options: LogxOptions
) -> Iterator[LogxHandle]:
    """Yield `handle`; after the test, report datafile warnings as pytest warnings, and
    fail on rejections unless the test failed already."""
    request.node.stash.setdefault(_handles_key, []).append(handle)
    handle.faults.replace(list(options.faults))
    yield handle
    found = datafile_warnings(handle.requests, options.expect_warnings)
    if found:
        _, line, _ = request.node.location  # reported at the test, not in the plugin
        warnings.warn_explicit(
            DatafileWarning(
                f"{len(found)} id(s) the datafile contradicts; the real endpoint accepts these "
                "batches and results drop the data:\n" + "\n".join(found)
            ),
            DatafileWarning,
            filename=str(request.node.path),
            lineno=(line or 0) + 1,
        )
    if request.node.stash.get(_failed_key, False):
        return  # the test failed already: its report carries the journal summary
    if options.expect_warnings:
        handle.assert_warnings(*options.expect_warnings)
    if not options.allow_rejected:
        handle.assert_no_rejections()


class TransportHandle(LogxHandle, LogxTransport):
    """An httpx transport that is also a handle: give it to a client, then assert on it."""

    def __init__(self, endpoint: Endpoint) -> None:
        LogxHandle.__init__(self, endpoint)
        LogxTransport.__init__(self, endpoint)

    def __repr__(self) -> str:
        return f"<TransportHandle {self.journal!r}>"


class MockHandle(LogxHandle):
    """The `logx_mock` handle; `router` is the started respx router, `responses_mock` the
    started `responses.RequestsMock`."""

    router: Any = None
    responses_mock: Any = None


def _guarded(config: pytest.Config) -> bool:
    return bool(config.getini(GUARD_INI)) and not config.getoption(GUARD_OPTION)


@pytest.fixture
def logx_mock(request: pytest.FixtureRequest) -> Iterator[LogxHandle]:
    """Answer the Optimizely hosts in process: events to https://logx.optimizely.com/v1/events
    (and the EU host), datafiles from cdn.optimizely.com and config.optimizely.com, for
    requests and httpx; any other client's attempt to reach them fails (the leak guard)."""
    options = _options(request)
    handle = MockHandle(Endpoint(MemoryJournal(), config=_config(options)))
    with contextlib.ExitStack() as stack:
        guarded = _guarded(request.config)
        if guarded:
            stack.enter_context(leak_guard())
        handle.router = stack.enter_context(logx_router(handle.endpoint))
        handle.responses_mock = stack.enter_context(logx_requests(handle.endpoint))
        if guarded:  # innermost: a thread is named before the routes end
            stack.enter_context(threads_outliving(request.node.nodeid))
        yield from _checked(request, handle, options)


@pytest.fixture
def logx_transport(request: pytest.FixtureRequest) -> Iterator[LogxHandle]:
    """An httpx transport bound to a fresh mock: `httpx.Client(transport=logx_transport)`."""
    options = _options(request)
    endpoint = Endpoint(MemoryJournal(), config=_config(options))
    yield from _checked(request, TransportHandle(endpoint), options)


def _session_journal(config: pytest.Config) -> Journal:
    """The journal `logx_db` names (a PostgreSQL URL, or a SQLite path relative to the ini
    file), else one in memory."""
    where = str(config.getini(DB_INI)).strip()
    if not where:
        return MemoryJournal()
    if "://" not in where and config.inipath is not None:
        where = str(config.inipath.parent / where)  # an absolute path stays as it is
    try:
        return open_journal(where)
    except LogxMockError as exc:
        # Its message names the journal with the password hidden, and says why; the
        # chained frames would show the URL as given, password and all.
        raise pytest.UsageError(f"the {DB_INI} ini key: {exc}") from None


@pytest.fixture(scope="session")
def make_logx_server(pytestconfig: pytest.Config) -> Iterator[ServerHandle]:
    """The session's live server: uvicorn on 127.0.0.1 in a thread, over the `logx_db`
    journal (shared with the `logx-mock serve` instances on it) or one in memory."""
    journal = _session_journal(pytestconfig)
    server = ThreadedServer(Endpoint(journal)).start()
    try:
        yield ServerHandle(server.endpoint, server.url)
    finally:
        server.stop()
        journal.close()


@pytest.fixture
def logx_server(
    request: pytest.FixtureRequest, make_logx_server: ServerHandle
) -> Iterator[ServerHandle]:
    """The live server, reset before the test and configured by its options."""
    options = _options(request)
    endpoint = make_logx_server.endpoint
    base = endpoint.config
    make_logx_server.reset()
    endpoint.config = dataclasses.replace(
        base, force_strict=options.strict, datafiles=Datafiles(options.datafile)
    )
    try:
        yield from _checked(request, make_logx_server, options)  # type: ignore[misc]
    finally:
        endpoint.config = base


@pytest.fixture
def logx_event_dispatcher(logx_server: ServerHandle) -> LogxEventDispatcher:
    """An Optimizely SDK event dispatcher that delivers to `logx_server`."""
    return LogxEventDispatcher(logx_server.events_url)
