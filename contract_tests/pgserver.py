"""A throwaway PostgreSQL server for the tests, the contract suite and the benchmarks.

Debian's `postgresql` package (`tests/run.sh` installs it when missing): `initdb` in a
fresh temporary folder, `pg_ctl` on a free port of 127.0.0.1 (no Unix socket), stopped
and removed at the end. PostgreSQL refuses to run as root, so as root the cluster
belongs to the `postgres` user the package creates. Every pytest-xdist worker starts
its own cluster, and every test its own database: no state is shared.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

__all__ = ["PG_BIN", "PostgresServer"]

PG_BIN = Path(os.environ.get("LOGX_PG_BIN", "/usr/lib/postgresql/15/bin"))
"""Where `initdb` and `pg_ctl` are (Debian's PostgreSQL 15 by default)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder; `database()` makes a fresh database.

    `durable=False` (the tests) turns fsync off: nothing here survives an operating
    system crash, and nothing needs to; a killed client or a stopped server loses
    nothing either way. The benchmarks keep PostgreSQL's defaults.
    """

    def __init__(self, *, durable: bool = False) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(
                f"no PostgreSQL at {PG_BIN}: install Debian's postgresql package "
                "(tests/run.sh does, as root), or set LOGX_PG_BIN to its bin folder"
            )
        self.root = Path(tempfile.mkdtemp(prefix="logx-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.durable = durable
        self.port = 0
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )

    def __repr__(self) -> str:
        return f"<PostgresServer 127.0.0.1:{self.port} {self.data}>"

    def _run(self, *command: str) -> None:
        if self._as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr}{done.stdout}{log}")

    def start(self) -> PostgresServer:
        """Start (or start again, on the same port once it has one)."""
        self.port = self.port or _free_port()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            "-c max_connections=300",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", " ".join(options), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clients disconnected, a clean shutdown) or
        `immediate` (as if killed: recovery runs at the next start)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        """Stop the server if it runs, and remove its folder."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def database(self) -> str:
        """A new, empty database; returns its URL."""
        name = f"t{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0".encode())
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database made by `database()`, disconnecting whoever is still on it."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
