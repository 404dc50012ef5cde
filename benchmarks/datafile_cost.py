"""What the datafile checks cost: the same work with and without a datafile, in one run.

    python benchmarks/datafile_cost.py [--duration 10]

In process: `Endpoint.handle` on a memory journal for one SDK impression (many
times) and for the contract corpus's 3.5 MB batch. Over the wire: `logx-mock serve`
on SQLite, strict, with and without `--datafile`, loaded by wrk like `run.py`.
Results go to benchmarks/DATAFILE.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import inprocess
from run import HERE, ROOT, bodies, free_port, machine, running, wrk

from mockserver import (
    CoreRequest,
    Datafile,
    Datafiles,
    Endpoint,
    EndpointConfig,
    MemoryJournal,
)

DATAFILE = ROOT / "contract_tests" / "cases" / "datafiles" / "datafile.json"
HEADERS = [("content-type", "application/json")]


def handle_seconds(body: bytes, count: int, datafiles: Datafiles, runs: int = 5) -> float:
    """The fastest of `runs` timings of `count` requests through a fresh endpoint."""

    def work() -> None:
        endpoint = Endpoint(
            MemoryJournal(max_requests=1000), config=EndpointConfig(datafiles=datafiles)
        )
        for _ in range(count):
            endpoint.handle(CoreRequest("POST", "/v1/events", body, HEADERS))

    return inprocess.best_of(runs, work)


def in_process() -> list[tuple[str, float, float]]:
    one = json.dumps(inprocess.BASE).encode()
    big = inprocess.near_limit_body()
    with_df = Datafiles((Datafile.load(DATAFILE),))
    rows = []
    for name, body, count in (("1 impression x 5,000", one, 5000), ("3.5 MB batch x 3", big, 3)):
        without = handle_seconds(body, count, Datafiles())
        with_ = handle_seconds(body, count, with_df)
        rows.append((name, without, with_))
        print(
            f"{name:24} without {without * 1000:8.1f} ms  with {with_ * 1000:8.1f} ms", flush=True
        )
    return rows


def over_the_wire(duration: int) -> list[tuple[str, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        payloads = bodies(tmp, quick=True)
        for payload, body in payloads.items():
            rps = []
            for extra in ([], ["--datafile", str(DATAFILE)]):
                port = free_port()
                db = tmp / f"{len(rps)}-{payload.replace(' ', '_')}.db"
                command = [
                    sys.executable,
                    "-m",
                    "mockserver",
                    "serve",
                    "--port",
                    str(port),
                    "--db",
                    str(db),
                    *extra,
                ]
                with running(command, port):
                    wrk(port, body, True, 2)  # warm up
                    rps.append(wrk(port, body, True, duration)[0])
            rows.append((payload, rps[0], rps[1]))
            print(f"{payload:24} without {rps[0]:8.1f} req/s  with {rps[1]:8.1f} req/s", flush=True)
    return rows


def write(
    inproc: list[tuple[str, float, float]], wire: list[tuple[str, float, float]], duration: int
) -> Path:
    lines = [
        "# What the datafile checks cost",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python benchmarks/datafile_cost.py --duration {duration}`, one run.",
        "",
        f"Machine: {machine()}.",
        "",
        "## In process (`Endpoint.handle`, memory journal, best of 5)",
        "",
        "| work | without datafile | with datafile | with / without |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {a * 1000:,.1f} ms | {b * 1000:,.1f} ms | {b / a:.2f}x |" for n, a, b in inproc
    ]
    lines += [
        "",
        f"## Over the wire (`logx-mock serve`, SQLite, strict; wrk -t1 -c32 -d{duration}s)",
        "",
        "| payload | without datafile | with datafile | with / without |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {n} | {a:,.0f} req/s | {b:,.0f} req/s | {b / a:.2f}x |" for n, a, b in wire]
    path = HERE / "DATAFILE.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("benchmarks need wrk: apt-get install wrk", file=sys.stderr)
        return 2
    inproc = in_process()
    wire = over_the_wire(args.duration)
    print(f"wrote {write(inproc, wire, args.duration)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
