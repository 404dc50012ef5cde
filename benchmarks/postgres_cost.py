"""What a PostgreSQL journal costs, and what a second instance on it buys: one run.

    python benchmarks/postgres_cost.py [--duration 10]

Three setups, each on a fresh journal, each loaded by wrk (Debian's package) with 32
connections in all, a fresh uuid per event, the strict header: one `logx-mock serve` on
a SQLite file; one on a PostgreSQL database; two on that one database (two wrk
processes at once, 16 connections each, their rates summed). PostgreSQL is Debian's
package, started for the run in a temporary folder with its default durability
(`fsync` on, `synchronous_commit` on: every commit waits for its WAL flush), while the
SQLite journal does not fsync at commit (WAL, `synchronous=NORMAL`; see the README). Each
setup gets one SDK impression per request, then a batch of ten. The figures are ratios
against SQLite measured in the same run; the CPU columns are the mock's processes and
the database server's, per request answered. After each measurement the whole journal is
paged through the admin API: ids 1..N with no gap or repeat, every request answered 204.
Results go to benchmarks/POSTGRES.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from run import HERE, ONE, ROOT, TEN, bodies, cpu_seconds, free_port, machine, running, wrk

sys.path.insert(0, str(ROOT))
from contract_tests.pgserver import PostgresServer

SQLITE, POSTGRES, TWO = (
    "one instance, SQLite",
    "one instance, PostgreSQL",
    "two instances, one PostgreSQL",
)
CONNECTIONS = 32


@dataclass
class Row:
    setup: str
    payload: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    mock_cpu_us: float
    db_cpu_us: float


@contextlib.contextmanager
def instances(db: str, count: int) -> Iterator[list[tuple[int, int]]]:
    """`count` `logx-mock serve --db DB` processes; yields (port, pid) of each."""
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(count):
            port = free_port()
            command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port)]
            pid = stack.enter_context(running([*command, "--db", db, "--max-requests", "0"], port))
            started.append((port, pid))
        yield started


def load(ports: list[int], body: Path, duration: int) -> tuple[float, float, float, int]:
    """wrk on every port at once, the connections split between them: summed req/s, the
    worst p50 and p99, summed errors."""
    results: list[tuple[float, float, float, int]] = []
    per = CONNECTIONS // len(ports)

    def one(port: int) -> None:
        results.append(wrk(port, body, True, duration, connections=per))

    threads = [threading.Thread(target=one, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(ports), "a wrk run failed"
    return (
        sum(r[0] for r in results),
        max(r[1] for r in results),
        max(r[2] for r in results),
        sum(r[3] for r in results),
    )


def check_journal(port: int) -> int:
    """Page the whole journal through one instance's admin API (as a follower would):
    the ids must run 1..N with no gap and no repeat, every request answered 204. Returns N."""
    ids: list[int] = []
    statuses: set[int] = set()
    while True:
        page = requests.get(
            f"http://127.0.0.1:{port}/_mock/requests",
            params={"after": ids[-1] if ids else 0, "limit": 1000},
            timeout=60,
        ).json()["requests"]
        if not page:
            break
        ids += [r["id"] for r in page]
        statuses |= {r["status"] for r in page}
    assert ids == list(range(1, len(ids) + 1)), "the ids have a gap or a repeat"
    assert statuses <= {204}, f"answers other than 204 were journaled: {statuses}"
    return len(ids)


def measure(duration: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        payloads = bodies(tmp, quick=True)
        database = PostgresServer(durable=True).start()
        postmaster = int((database.data / "postmaster.pid").read_text().split()[0])
        try:
            for payload in (ONE, TEN):
                for setup in (SQLITE, POSTGRES, TWO):
                    db = str(tmp / f"{len(rows)}.db") if setup == SQLITE else database.database()
                    with instances(db, 2 if setup == TWO else 1) as started:
                        ports = [port for port, _ in started]
                        load(ports, payloads[payload], 2)  # warm up
                        before = sum(cpu_seconds(pid) for _, pid in started)
                        db_before = cpu_seconds(postmaster)
                        rps, p50, p99, errors = load(ports, payloads[payload], duration)
                        count = max(rps * duration, 1)
                        mock = (sum(cpu_seconds(pid) for _, pid in started) - before) / count
                        db_cpu = (cpu_seconds(postmaster) - db_before) / count
                        total = check_journal(ports[0])
                    row = Row(setup, payload, rps, p50, p99, errors, mock * 1e6, db_cpu * 1e6)
                    rows.append(row)
                    print(
                        f"{setup:30} {payload:13} {rps:8.0f} req/s  p50 {p50:6.2f} ms  "
                        f"p99 {p99:6.2f} ms  errors {errors}  mock {row.mock_cpu_us:6.0f} us/req  "
                        f"db {row.db_cpu_us:6.0f} us/req  journal {total:,}",
                        flush=True,
                    )
        finally:
            database.close()
    return rows


def write(rows: list[Row], duration: int) -> Path:
    lines = [
        "# What a PostgreSQL journal costs",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python benchmarks/postgres_cost.py --duration {duration}`, one run.",
        "",
        f"Machine: {machine()}. PostgreSQL: Debian's package, on the same machine, "
        "default durability (every commit flushed to its WAL); SQLite: WAL, "
        "`synchronous=NORMAL` (no flush at commit).",
        "",
        f"wrk, {CONNECTIONS} connections in all (two instances: 16 each, at once), "
        f"{duration} s per row after 2 s of warm-up, strict header, a fresh uuid per event, "
        "everything on loopback. Ratios are against SQLite with the same payload in this run. "
        "CPU per request answered: the mock's processes, and the database server's.",
        "",
        "| setup | payload | req/s | vs SQLite | p50 | p99 | errors | mock CPU/req "
        "| database CPU/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {r.payload: r.rps for r in rows if r.setup == SQLITE}
    lines += [
        f"| {r.setup} | {r.payload} | {r.rps:,.0f} | {r.rps / base[r.payload]:.2f}x "
        f"| {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms | {r.errors} | {r.mock_cpu_us:,.0f} us "
        f"| {r.db_cpu_us:,.0f} us |"
        for r in rows
    ]
    lines += [
        "",
        "After every row the whole journal was paged through the admin API with `after=ID`: "
        "ids 1..N with no gap and no repeat, every request answered 204.",
        "",
        f"Everything ran on this one machine ({os.cpu_count()} cores): wrk, the mock's "
        "instances and PostgreSQL compete for the same cores, so a second instance here "
        "cannot add a core of its own; instances on other machines (what PostgreSQL is for) "
        "were not measured.",
    ]
    path = HERE / "POSTGRES.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    args = parser.parse_args()
    print(f"wrote {write(measure(args.duration), args.duration)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
