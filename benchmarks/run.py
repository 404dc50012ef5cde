"""The side-by-side benchmark: one command, one run, ratios to the floor.

    python benchmarks/run.py [--duration 10] [--rounds 3] [--quick]

The floor is a bare Starlette endpoint on uvicorn with httptools + uvloop (what
`uvicorn[standard]` gives, and what `logx-mock serve` runs on); the same endpoint
on h11 + asyncio is a second reference line. Load comes from wrk (Debian's
package), in its own process on loopback: one thread, 32 connections, bounded in
time, a fresh uuid per event. Every server runs alone, in its own process, on a
fresh journal; with `--rounds N`, every server N times in turn, each figure the median of
its rounds and each ratio the median of its rounds' ratios (a server against the floor
of the same round, a minute or two apart). Then the in-process figures (respx door,
3.5 MB ingest, threaded start, a journal of 1M events). Results and the targets, met or not, go to
benchmarks/RESULTS.md, followed by benchmarks/NOTES.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import inprocess

HERE = Path(__file__).parent
ROOT = HERE.parent
PAYLOADS = ROOT / "tests" / "payloads"
CONNECTIONS = 32


@dataclass
class Load:
    """What wrk measured for one server and one payload."""

    server: str
    payload: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float
    """The server's CPU time per request answered: on a shared machine, steadier than req/s."""
    rounds: tuple[Load, ...] = ()
    """With `--rounds`, the rounds this figure is the median of (their order)."""


def median_load(rounds: list[Load]) -> Load:
    """The rounds of one server and payload as one `Load`: each figure the median of the
    rounds' (errors summed), the rounds kept for their ratios and their spread."""
    if len(rounds) == 1:
        return rounds[0]
    first = rounds[0]
    return Load(
        first.server,
        first.payload,
        statistics.median(load.rps for load in rounds),
        statistics.median(load.p50_ms for load in rounds),
        statistics.median(load.p99_ms for load in rounds),
        sum(load.errors for load in rounds),
        statistics.median(load.cpu_us for load in rounds),
        tuple(rounds),
    )


def round_ratios(a: Load, b: Load, figure: str) -> list[float]:
    """`figure` (rps, p99_ms) of `a` over `b`'s, round by round when both have the same
    rounds (each against the one measured a minute or two from it), else of the medians."""
    if a.rounds and len(a.rounds) == len(b.rounds):
        pairs = list(zip(a.rounds, b.rounds, strict=True))
    else:
        pairs = [(a, b)]
    return [getattr(x, figure) / getattr(y, figure) for x, y in pairs if getattr(y, figure)]


def ratio_text(values: list[float]) -> str:
    """A ratio's median, with its rounds' range when there are several."""
    if not values:
        return "-"
    middle = f"{statistics.median(values):.2f}x"
    if len(values) == 1:
        return middle
    return f"{middle} ({min(values):.2f}-{max(values):.2f})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(port: int, db: Path, workers: int = 1) -> list[str]:
    """`logx-mock serve` on `port` over the SQLite file `db` (with `--workers` past one)."""
    command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port), "--db", str(db)]
    return [*command, "--workers", str(workers)] if workers > 1 else command


def wait_until_up(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def running(command: list[str], port: int) -> Iterator[int]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        try:
            wait_until_up(port)
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


FLOOR = "floor: Starlette, httptools + uvloop"
FLOOR_H11 = "floor: Starlette, h11 + asyncio"
SQLITE = "logx-mock, SQLite"
MEMORY = "logx-mock --memory"
WORKERS = "logx-mock --workers 2"
UNRECORDED = "logx-mock, recording off"
HTTPSERVER = "pytest-httpserver"
PRISM = "Prism 5"
ONE, TEN, HUNDRED, NEAR_LIMIT = "1 impression", "batch of 10", "batch of 100", "3.5 MB batch"
EVENTS = {ONE: 1, TEN: 10, HUNDRED: 100}
JOURNALS = ("s.db", "w.db")
"""The journal files `servers` gives logx-mock, in the run's folder."""


@dataclass
class Server:
    """How to start one server, and which payloads it gets."""

    command: list[str]
    payloads: tuple[str, ...]
    strict: bool = True


def servers(tmp: Path) -> dict[str, Server]:
    """name -> command (with {port}) and payloads; logx-mock gets the strict header."""
    py = sys.executable
    serve = [py, "-m", "mockserver", "serve", "--port", "{port}"]
    every = (ONE, TEN, HUNDRED, NEAR_LIMIT)
    table = {
        FLOOR: Server([py, str(HERE / "floor_app.py"), "{port}", "httptools"], every, False),
        FLOOR_H11: Server([py, str(HERE / "floor_app.py"), "{port}", "h11"], every, False),
        SQLITE: Server([*serve, "--db", str(tmp / JOURNALS[0])], every),
        MEMORY: Server([*serve, "--memory"], (ONE, TEN, HUNDRED)),
        WORKERS: Server([*serve, "--db", str(tmp / JOURNALS[1]), "--workers", "2"], (ONE, TEN)),
        UNRECORDED: Server([py, str(HERE / "unrecorded_app.py"), "{port}"], (ONE, TEN, HUNDRED)),
        HTTPSERVER: Server([py, str(HERE / "httpserver_peer.py"), "{port}"], (ONE, TEN), False),
    }
    prism = HERE / "node_modules" / ".bin" / "prism"
    if prism.exists():
        from mockserver.web.admin.routes import openapi_document

        spec = tmp / "openapi.json"
        spec.write_text(json.dumps(openapi_document()))
        command = [str(prism), "mock", str(spec), "-p", "{port}", "-h", "127.0.0.1"]
        table[PRISM] = Server([*command, "--errors", "false"], (ONE, TEN), False)
    else:
        print("Prism 5 is not installed (cd benchmarks && npm install): measuring without it")
    return table


def bodies(tmp: Path, quick: bool, spread: bool = False) -> dict[str, Path]:
    """The payloads, with `__UUID__` where each request needs a fresh uuid: every event's
    uuid, and with `spread` every visitor's id too (an application's traffic, a visitor per
    user: the recorded runs' since session 10; without it every event is the SDK example's
    one visitor, as recorded runs until session 9 were)."""
    one = json.loads((PAYLOADS / "python-sdk-decide-impression.json").read_text())
    one["visitors"][0]["snapshots"][0]["events"][0]["uuid"] = "__UUID__"
    if spread:
        one["visitors"][0]["visitor_id"] = "__UUID__"
    one["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = int(time.time() * 1000)
    made = {name: dict(one, visitors=one["visitors"] * count) for name, count in EVENTS.items()}
    paths = {}
    for name, payload in made.items():
        path = tmp / f"{name.replace(' ', '_')}.json"
        path.write_text(json.dumps(payload))
        paths[name] = path
    if not quick:
        from inprocess import near_limit_body

        path = tmp / "near_limit.json"
        path.write_bytes(near_limit_body())
        paths[NEAR_LIMIT] = path
    return paths


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its children (`--workers` processes) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if stat.parent.name == str(pid) or fields[1] == str(pid):  # the process, or a child
                total += int(fields[11]) + int(fields[12])
    return total / ticks


def wrk(
    port: int, body: Path, strict: bool, duration: int, connections: int = CONNECTIONS
) -> tuple[float, float, float, int]:
    env = {**os.environ, "BODY_FILE": str(body), "STRICT": "1" if strict else "0"}
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "post.lua"),
        f"http://127.0.0.1:{port}/v1/events",
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {int(p): float(v) * _UNIT[u] for p, v, u in _LATENCY.findall(out)}
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout) (\d+)", out))
    errors += (
        sum(
            int(n)
            for n in re.findall(
                r"Socket errors: connect (\d+), read (\d+), "
                r"write (\d+), timeout (\d+)",
                out,
            )[0]
        )
        if ("Socket errors" in out)
        else 0
    )
    return rps, latency.get(50, 0.0), latency.get(99, 0.0), errors


def measure_load(
    duration: int,
    quick: bool,
    only: set[str] | None = None,
    rounds: int = 1,
    spread: bool = False,
) -> list[Load]:
    measured: dict[tuple[str, str], list[Load]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        payloads = bodies(tmp, quick, spread)
        table = {name: spec for name, spec in servers(tmp).items() if not only or name in only}
        # Payload by payload, every server in turn (the floor first), round after round: a
        # server and the floor it is compared with run a minute or two apart, not five. The
        # machine's speed drifts: ordered server by server, `recording off` (the floor's
        # work) once measured 1.11x the floor it followed by four minutes.
        runs = [
            (n, p)
            for p in payloads
            for _ in range(rounds)
            for n, spec in table.items()
            if p in spec.payloads
        ]
        for server, payload in runs:
            spec = table[server]
            port = free_port()
            command = [part.replace("{port}", str(port)) for part in spec.command]
            with running(command, port) as pid:
                wrk(port, payloads[payload], spec.strict, 2)  # warm up
                before = cpu_seconds(pid)
                rps, p50, p99, errors = wrk(port, payloads[payload], spec.strict, duration)
                cpu = (cpu_seconds(pid) - before) / max(rps * duration, 1) * 1e6
            print(
                f"{server:34} {payload:14} {rps:9.1f} req/s  p50 {p50:7.2f} ms  "
                f"p99 {p99:7.2f} ms  errors {errors}  cpu {cpu:7.1f} us/req",
                flush=True,
            )
            load = Load(server, payload, rps, p50, p99, errors, cpu)
            measured.setdefault((server, payload), []).append(load)
            settle(tmp)
    order = list(table)
    results = [median_load(loads) for loads in measured.values()]
    return sorted(results, key=lambda load: order.index(load.server))  # a server's rows together


def settle(tmp: Path) -> None:
    """Leave the next run a machine as the last one found it: its journal files removed
    (each run starts on a fresh journal) and the pages it wrote flushed, so the kernel does
    not write them back during the next server's run (the 3.5 MB batches on SQLite leave
    gigabytes: `--memory` on batches of 100, measured right after them, did 1,288 req/s with
    a p99 of 164 ms, against 1,715 and 44 ms alone)."""
    for name in JOURNALS:
        for path in tmp.glob(f"{name}*"):
            path.unlink()
    os.sync()


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else cpu
    import starlette
    import uvicorn

    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__}, starlette {starlette.__version__}, "
        f"{platform.system()} {platform.release()}"
    )


def write_results(
    loads: list[Load], extra: list[tuple[str, str, str]], args: argparse.Namespace
) -> Path:
    floor = {load.payload: load for load in loads if load.server == FLOOR}
    rounds = max((len(load.rounds) for load in loads), default=0)
    how = f" --rounds {args.rounds}" if args.rounds > 1 else ""
    lines = [
        "# Benchmark results",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python benchmarks/run.py --duration {args.duration}{how}"
        f"{' --quick' if args.quick else ''}`.",
        "",
        f"Machine: {machine()}.",
        "",
        f"Machine load (`uptime`'s 1/5/15-minute load averages; 2 cores, shared with other "
        f"engineers' test runs): {_loads(args.load_before)} when the run began, "
        f"{_loads(os.getloadavg())} when it ended.",
        "",
        f"Load: `wrk -t1 -c{CONNECTIONS} -d{args.duration}s --latency -s benchmarks/post.lua` from "
        "its own process on loopback, after a 2 s warm-up; every event gets a fresh uuid"
        f"{VISITORS[args.visitors]}; "
        "logx-mock gets `X-Optimizely-Strict: true`. Each server runs alone, in its own process, "
        "on a fresh journal; the payloads are measured one after another on every server in "
        "turn, the floor first. The floor is a bare Starlette endpoint that reads the body and "
        "answers 204, on uvicorn with httptools + uvloop; ratios are to the floor on the same "
        "payload. CPU µs/request is the server's CPU time (user + system, its worker processes "
        "included) during the run, per request answered.",
    ]
    if rounds > 1:
        lines += [
            "",
            f"Rounds: every server ran {rounds} times on each payload, in turn (the floor, then "
            "each server, then the floor again). Each figure is the median of its rounds; each "
            "ratio is the median of the rounds' ratios, a server against the floor of its own "
            "round, with their range in brackets; `req/s by round` shows every round.",
        ]
    by_round = " req/s by round |" if rounds > 1 else ""
    lines += [
        "",
        "## Load",
        "",
        "| server | payload | req/s | events/s | p50 ms | p99 ms | req/s vs floor | "
        f"p99 vs floor | CPU µs/request | errors |{by_round}",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if rounds > 1 else ""),
    ]
    for load in loads:
        base = floor.get(load.payload)
        if base is None or base is load:  # the floor itself: 1.00x, with no range
            ratio = p99 = "1.00x" if base else "-"
        else:
            ratio = ratio_text(round_ratios(load, base, "rps"))
            p99 = ratio_text(round_ratios(load, base, "p99_ms"))
        events = f"{load.rps * EVENTS[load.payload]:,.0f}" if load.payload in EVENTS else "-"
        each = (
            f" {' / '.join(f'{one.rps:,.0f}' for one in load.rounds) or f'{load.rps:,.0f}'} |"
            if rounds > 1
            else ""
        )
        lines.append(
            f"| {load.server} | {load.payload} | {load.rps:,.0f} | {events} | {load.p50_ms:.2f} | "
            f"{load.p99_ms:.2f} | {ratio} | {p99} | {load.cpu_us:,.0f} | {load.errors} |{each}"
        )
    lines += ["", "## In process", "", "| figure | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in extra]
    lines += ["", "## Targets, from this run", "", "| target | measured | met? |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(loads, extra)]
    path = HERE / "RESULTS.md"
    notes = HERE / "NOTES.md"
    text = "\n".join(lines) + "\n"
    if notes.exists():
        text += "\n" + notes.read_text()
    path.write_text(text)
    return path


def _loads(averages: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in averages)


def targets(loads: list[Load], extra: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Issue #16's targets, each as (target, figure, met?) from this run's numbers."""
    by = {(load.server, load.payload): load for load in loads}
    rows: list[tuple[str, str, str]] = []

    def ratio(name: str, a: tuple[str, str], b: tuple[str, str], at_least: float) -> None:
        values = round_ratios(by[a], by[b], "rps") if a in by and b in by else []
        if values:
            rows.append((name, ratio_text(values), _met(statistics.median(values) >= at_least)))

    def tail(name: str, a: tuple[str, str], at_most: float) -> None:
        b = (FLOOR, a[1])
        values = round_ratios(by[a], by[b], "p99_ms") if a in by and b in by else []
        if values:
            rows.append((name, ratio_text(values), _met(statistics.median(values) <= at_most)))

    ratio(
        "one impression, SQLite, one process >= 0.5x floor req/s", (SQLITE, ONE), (FLOOR, ONE), 0.5
    )
    ratio("(stretch) >= 0.85x floor req/s", (SQLITE, ONE), (FLOOR, ONE), 0.85)
    tail("one impression, SQLite: p99 <= 3x the floor's", (SQLITE, ONE), 3)
    ratio("batch of ten, SQLite >= 0.25x floor req/s", (SQLITE, TEN), (FLOOR, TEN), 0.25)
    tail("--memory: p99 <= 3x the floor's (one impression)", (MEMORY, ONE), 3)
    ratio(">= 3x pytest-httpserver (one impression)", (SQLITE, ONE), (HTTPSERVER, ONE), 3)
    ratio(">= 3x pytest-httpserver (batch of ten)", (SQLITE, TEN), (HTTPSERVER, TEN), 3)
    ratio(">= 5x Prism 5 (one impression)", (SQLITE, ONE), (PRISM, ONE), 5)
    ratio(">= 5x Prism 5 (batch of ten)", (SQLITE, TEN), (PRISM, TEN), 5)
    ratio("--workers 2 >= 1.6x one worker (one impression)", (WORKERS, ONE), (SQLITE, ONE), 1.6)
    for figure, measured, target in extra:
        found = re.search(r"= ([\d.]+)x", measured)
        bound = re.match(r"<= ([\d.]+)x", target)
        if found and bound:
            value = float(found.group(1))
            rows.append(
                (f"{figure} {target}", f"{value:.2f}x", _met(value <= float(bound.group(1))))
            )
    return rows


VISITORS = {
    "one": " and every one the SDK example's visitor",
    "spread": " and a fresh visitor id (an application's traffic has a visitor per user)",
}
"""`--visitors`, as RESULTS.md's load line says it."""


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--quick", action="store_true", help="skip the 3.5 MB and 1M-event runs")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every server this many times in turn; figures are the rounds' medians",
    )
    parser.add_argument(
        "--only", action="append", help="measure only this server (repeatable; results not written)"
    )
    parser.add_argument(
        "--visitors",
        choices=list(VISITORS),
        default="spread",
        help="spread (the recorded runs' since session 10): a fresh visitor id per event, as "
        "an application's traffic; one: every event the SDK example's visitor (until then)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds takes 1 or more")
    args.load_before = os.getloadavg()
    if shutil.which("wrk") is None:
        print("benchmarks need wrk: apt-get install wrk", file=sys.stderr)
        return 2
    only, spread = set(args.only or ()), args.visitors == "spread"
    loads = measure_load(args.duration, args.quick, only, args.rounds, spread)
    if args.only:
        return 0
    extra = inprocess.measure(quick=args.quick)
    print(f"wrote {write_results(loads, extra, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
