"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from contract_tests.pgserver import PostgresServer
from mockserver import (
    Endpoint,
    EndpointConfig,
    Journal,
    MemoryJournal,
    SqliteJournal,
    ThreadedServer,
)
from mockserver.journal.postgres import PostgresJournal


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def sqlite_server(journal_path: Path) -> Iterator[ThreadedServer]:
    """A real uvicorn server on 127.0.0.1 over a real SQLite file."""
    journal = SqliteJournal(journal_path)
    with ThreadedServer(Endpoint(journal)) as server:
        yield server
    journal.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """This worker's PostgreSQL server (each pytest-xdist worker starts its own)."""
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start."""
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on this worker's PostgreSQL server."""
    url = pg_server.database()
    yield url
    pg_server.drop(url)


@pytest.fixture
def pg_instances(pg_url: str) -> Iterator[list[Endpoint]]:
    """Two instances' endpoints on one PostgreSQL database."""
    journals = [PostgresJournal(pg_url), PostgresJournal(pg_url)]
    yield [Endpoint(j) for j in journals]
    for journal in journals:
        journal.close()


@pytest.fixture
def memory_endpoint() -> Endpoint:
    return Endpoint(MemoryJournal(), config=EndpointConfig())


class ServeProcess:
    """`logx-mock serve` run as a subprocess, as a user would."""

    def __init__(self, *args: str, prefix: Sequence[str] = ()) -> None:
        """`prefix` runs the command under another, e.g. `ip netns exec NAME`."""
        # The log goes to a file: a pipe nobody reads would fill and stall the server.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "mockserver", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,  # its own process group: --workers children go with it
        )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        self.inspector_line = self.proc.stdout.readline()
        match = re.search(r"(https?://\S+?)/v1/events", self.banner)
        if match is None:
            self.proc.kill()
            raise AssertionError(f"no URL in the banner {self.banner!r}: {self.read_log()}")
        self.url = match.group(1)
        self.events_url = self.url + "/v1/events"
        self.ca_line = self.proxy_url = ""
        if "--tls" in args or "--proxy-port" in args:
            self.ca_line = self.proc.stdout.readline()
        if "--proxy-port" in args:
            proxy = re.search(r"^proxy: (http://\S+)", self.proc.stdout.readline())
            assert proxy, self.read_log()
            self.proxy_url = proxy.group(1)

    def read_log(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> tuple[int, str]:
        """Send `sig`, wait for the exit; returns (exit code, everything logged)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self.read_log()


@pytest.fixture
def serve() -> Iterator[type[ServeProcess]]:
    """Start `logx-mock serve` subprocesses; all are stopped at teardown."""
    started: list[ServeProcess] = []

    class Tracked(ServeProcess):
        def __init__(self, *args: str, prefix: Sequence[str] = ()) -> None:
            super().__init__(*args, prefix=prefix)
            started.append(self)

    yield Tracked
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.proc.pid, signal.SIGKILL)
        process.proc.communicate()
        process.log.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make_journal(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Journal]]:
    """The journal contract, on every journal; `make()` twice opens the same store."""
    opened: list[Journal] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""

    def make(**kwargs: object) -> Journal:
        journal: Journal
        if request.param == "memory":
            journal = MemoryJournal(**kwargs)  # type: ignore[arg-type]
        elif request.param == "postgres":
            journal = PostgresJournal(url, **kwargs)  # type: ignore[arg-type]
        else:
            journal = SqliteJournal(tmp_path / "j.db", **kwargs)  # type: ignore[arg-type]
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()
