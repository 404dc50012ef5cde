"""The side-by-side benchmark: one command, one run, ratios to the Starlette floor.

    python benchmarks/run.py [--duration 10] [--quick]

Load comes from wrk (Debian's package), in its own process on loopback: one
thread, 32 connections, bounded in time. Every server runs in its own process
on the same uvicorn settings where it is a uvicorn server. In-process figures
(respx path, 3.5 MB ingest, threaded start, a journal of 1M events) come after.
Results go to benchmarks/RESULTS.md.
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def running(command: list[str], port: int) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        try:
            wait_until_up(port)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def servers(tmp: Path) -> dict[str, tuple[list[str], bool]]:
    """name -> (command with {port}, strict header)."""
    py = sys.executable
    prism = HERE / "node_modules" / ".bin" / "prism"
    spec = tmp / "openapi.json"
    from mockserver.web.admin.routes import openapi_document

    spec.write_text(json.dumps(openapi_document()))
    table: dict[str, tuple[list[str], bool]] = {
        "floor (bare Starlette)": ([py, str(HERE / "floor_app.py"), "{port}"], False),
        "logx-mock strict": (
            [py, "-m", "mockserver", "serve", "--port", "{port}", "--db", str(tmp / "s.db")],
            True,
        ),
        "logx-mock strict, 2 workers": (
            [
                py,
                "-m",
                "mockserver",
                "serve",
                "--port",
                "{port}",
                "--db",
                str(tmp / "w.db"),
                "--workers",
                "2",
            ],
            True,
        ),
        "logx-mock permissive": (
            [py, "-m", "mockserver", "serve", "--port", "{port}", "--db", str(tmp / "p.db")],
            False,
        ),
        "pytest-httpserver": ([py, str(HERE / "httpserver_peer.py"), "{port}"], False),
    }
    if prism.exists():
        table["Prism 5"] = (
            [str(prism), "mock", str(spec), "-p", "{port}", "-h", "127.0.0.1", "--errors", "false"],
            False,
        )
    return table


def bodies(tmp: Path, quick: bool) -> dict[str, Path]:
    """The payloads, with `__UUID__` where each request needs a fresh uuid."""
    one = json.loads((PAYLOADS / "python-sdk-decide-impression.json").read_text())
    one["visitors"][0]["snapshots"][0]["events"][0]["uuid"] = "__UUID__"
    one["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = int(time.time() * 1000)
    ten = dict(one, visitors=one["visitors"] * 10)
    made = {"1 impression": one, "batch of 10": ten}
    paths = {}
    for name, payload in made.items():
        path = tmp / f"{name.replace(' ', '_')}.json"
        path.write_text(json.dumps(payload))
        paths[name] = path
    if not quick:
        from inprocess import near_limit_body

        path = tmp / "near_limit.json"
        path.write_bytes(near_limit_body())
        paths["3.5 MB batch"] = path
    return paths


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(port: int, body: Path, strict: bool, duration: int) -> tuple[float, float, float, int]:
    env = {**os.environ, "BODY_FILE": str(body), "STRICT": "1" if strict else "0"}
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
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


def measure_load(duration: int, quick: bool) -> list[Load]:
    results = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        payloads = bodies(tmp, quick)
        for server, (template, strict) in servers(tmp).items():
            for payload, body in payloads.items():
                port = free_port()
                command = [part.replace("{port}", str(port)) for part in template]
                with running(command, port):
                    wrk(port, body, strict, 2)  # warm up
                    rps, p50, p99, errors = wrk(port, body, strict, duration)
                print(
                    f"{server:24} {payload:14} {rps:9.1f} req/s  p50 {p50:7.2f} ms  "
                    f"p99 {p99:7.2f} ms  errors {errors}",
                    flush=True,
                )
                results.append(Load(server, payload, rps, p50, p99, errors))
    return results


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
    floor = {load.payload: load for load in loads if load.server.startswith("floor")}
    lines = [
        "# Benchmark results",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python benchmarks/run.py --duration {args.duration}{' --quick' if args.quick else ''}`.",
        "",
        f"Machine: {machine()}.",
        "",
        f"Load: `wrk -t1 -c{CONNECTIONS} -d{args.duration}s --latency -s benchmarks/post.lua` from "
        "its own process on loopback, after a 2 s warm-up; every event gets a fresh uuid. "
        "Each server runs alone, in its own process, on a fresh journal.",
        "",
        "## Load",
        "",
        "| server | payload | req/s | p50 ms | p99 ms | req/s vs floor | p99 vs floor | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for load in loads:
        base = floor.get(load.payload)
        ratio = f"{load.rps / base.rps:.2f}x" if base else "-"
        p99 = f"{load.p99_ms / base.p99_ms:.2f}x" if base and base.p99_ms else "-"
        lines.append(
            f"| {load.server} | {load.payload} | {load.rps:,.0f} | {load.p50_ms:.2f} | "
            f"{load.p99_ms:.2f} | {ratio} | {p99} | {load.errors} |"
        )
    lines += ["", "## In process", "", "| figure | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in extra]
    path = HERE / "RESULTS.md"
    notes = HERE / "NOTES.md"
    text = "\n".join(lines) + "\n"
    if notes.exists():
        text += "\n" + notes.read_text()
    path.write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--quick", action="store_true", help="skip the 3.5 MB and 1M-event runs")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("benchmarks need wrk: apt-get install wrk", file=sys.stderr)
        return 2
    loads = measure_load(args.duration, args.quick)
    extra = inprocess.measure(quick=args.quick)
    print(f"wrote {write_results(loads, extra, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
