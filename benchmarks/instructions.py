"""Instructions per request (valgrind's count, not time): what a busy shared machine cannot
disturb, for deciding between two trees when CPU time per request moves by 20 % a minute.

    python benchmarks/instructions.py respx [TREE ...]      # the respx door, and a bare route
    python benchmarks/instructions.py core [TREE ...]       # Endpoint.handle alone
    python benchmarks/instructions.py ingest [TREE ...]     # the 3.5 MB batch, and json.loads
    python benchmarks/instructions.py serve [TREE ...] -- --memory --max-requests 500
    python benchmarks/instructions.py serve [TREE ...] -- --db /tmp/journal.db
    python benchmarks/instructions.py serve [TREE ...] -- --db /tmp/journal.db --workers 2

Each figure is (count(N2) - count(N1)) / (N2 - N1), so start-up and imports cancel out.
`respx` runs inprocess.py's comparison (the same SDK impression body each time; `fresh`:
a new uuid each time) in process; `serve` starts `python -m mockserver serve ARGS` under
valgrind and sends strict one-impression requests, each with a fresh uuid, over 32
keep-alive connections. `core` is `Endpoint.handle` on a memory journal for one strict SDK
impression (the same body each time, and fresh uuids), without a door; `ingest` is
inprocess.py's 3.5 MB batch through `Endpoint.handle` on a SQLite journal, against
`json.loads` of it (N1, N2 default to 1 and 3 batches). Trees default to this checkout.
Needs valgrind (apt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
_IN_PROCESS = """
import os, sys, httpx, respx, inprocess
from mockserver import Endpoint, MemoryJournal
from pytest_plugin import logx_router
n, which = int(os.environ["N"]), os.environ["WHICH"]
same = inprocess.json.dumps(inprocess.BASE).encode()
bodies = inprocess.impression_bodies(n) if which == "fresh" else [same] * n
headers = {"content-type": "application/json"}
if which == "bare":
    router = respx.mock()
    router.post(inprocess.URL).respond(204)
else:
    router = logx_router(Endpoint(MemoryJournal()))
with router, httpx.Client() as client:
    for body in bodies:
        client.post(inprocess.URL, content=body, headers=headers)
"""

_CORE = """
import os, inprocess
from mockserver import CoreRequest, Endpoint, MemoryJournal
n, which = int(os.environ["N"]), os.environ["WHICH"]
bodies = inprocess.impression_bodies(n) if which == "fresh" else inprocess.impression_bodies(1) * n
headers = [("content-type", "application/json"), ("x-optimizely-strict", "true")]
endpoint = Endpoint(MemoryJournal())
for body in bodies:
    endpoint.handle(CoreRequest("POST", "/v1/events", body, headers=headers, peer="127.0.0.1"))
"""
_INGEST = """
import json, os, tempfile, inprocess
from pathlib import Path
from mockserver import CoreRequest, Endpoint, SqliteJournal
n, which = int(os.environ["N"]), os.environ["WHICH"]
body = inprocess.near_limit_body().replace(b"__UUID__", b"u-")
bodies = [body.replace(b'"u-', f'"r{i}-'.encode()) for i in range(n)]
headers = [("content-type", "application/json"), ("x-optimizely-strict", "true")]
endpoint = Endpoint(SqliteJournal(Path(tempfile.mkdtemp()) / "j.db"))
for body in bodies:
    if which == "loads":
        json.loads(body)
    else:
        request = CoreRequest("POST", "/v1/events", body, headers=headers, peer="127.0.0.1")
        assert endpoint.handle(request).status == 204
"""
_SCRIPTS = {"same": _IN_PROCESS, "fresh": _IN_PROCESS, "bare": _IN_PROCESS}
_SCRIPTS |= {"core-same": _CORE, "core-fresh": _CORE, "ingest": _INGEST, "loads": _INGEST}


_PATIENT_SUPERVISOR = """
import runpy, sys, uvicorn
init = uvicorn.Config.__init__
def patient(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.timeout_worker_healthcheck = 3600  # a worker under valgrind answers pings slowly
uvicorn.Config.__init__ = patient
sys.argv[0] = "mockserver"
runpy.run_module("mockserver", run_name="__main__")
"""
"""`serve --workers` under valgrind: uvicorn's supervisor pings each worker and starts it
again when it does not answer within 5 s, which a worker under valgrind does not."""


def _count(command: list[str], env: dict[str, str], cwd: Path, drive: int = 0) -> int:
    """Instructions valgrind counted for `command` (a server, when `drive` requests are
    to be sent to it: its first output line names the port); with `--workers`, summed over
    every process."""
    children: list[str] = []
    if "--workers" in command:
        children = ["--trace-children=yes"]
        at = command.index("-m")
        command = [*command[:at], "-c", _PATIENT_SUPERVISOR, *command[at + 2 :]]
    proc = subprocess.Popen(
        [*VALGRIND, *children, *command],
        env={**os.environ, "PYTHONHASHSEED": "0", **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if drive:
        assert proc.stdout is not None
        port = int(re.search(r":(\d+)/", proc.stdout.readline()).group(1))  # type: ignore[union-attr]
        asyncio.run(_drive(port, drive))
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=900)
    found = re.findall(r"I\s+refs:\s+([\d,]+)", err)  # one per process
    if not found:
        raise SystemExit(err[-3000:])
    return sum(int(count.replace(",", "")) for count in found)


async def _drive(port: int, n: int) -> None:
    one = json.loads((HERE.parent / "tests/payloads/python-sdk-decide-impression.json").read_text())
    template = json.dumps(one).replace(
        one["visitors"][0]["snapshots"][0]["events"][0]["uuid"], "{}"
    )
    numbers = iter(range(n))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in numbers:
            body = template.replace("{}", f"i-{time.time_ns()}-{i}").encode()
            head = (
                "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-Optimizely-Strict: true\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 204"), answer
        writer.close()

    await asyncio.gather(*(connection() for _ in range(32)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def per_request(tree: Path, kind: str, n1: int, n2: int, serve_args: list[str]) -> float:
    python = sys.executable
    env = {"PYTHONPATH": os.pathsep.join([str(tree), str(tree / "benchmarks")])}
    if kind == "serve":

        def count(n: int) -> int:
            port = ["--port", str(_free_port())]
            return _count([python, "-m", "mockserver", "serve", *port, *serve_args], env, tree, n)
    else:
        which = kind.removeprefix("core-")

        def count(n: int) -> int:
            script = _SCRIPTS[kind]
            return _count([python, "-c", script], {**env, "N": str(n), "WHICH": which}, tree)

    return (count(n2) - count(n1)) / (n2 - n1)


_PAIRS: dict[str, tuple[tuple[str, str], tuple[int, int], Callable[[float, float], str]]] = {
    "core": (
        ("core-same", "core-fresh"),
        (200, 600),
        lambda same, fresh: (
            f"Endpoint.handle {same / 1e3:,.1f}k instructions per request "
            f"(fresh uuids {fresh / 1e3:,.1f}k)"
        ),
    ),
    "ingest": (
        ("ingest", "loads"),
        (1, 3),
        lambda ingest, loads: (
            f"3.5 MB ingest {ingest / 1e6:,.0f}M instructions, json.loads "
            f"{loads / 1e6:,.0f}M: {ingest / loads:.2f}x"
        ),
    ),
}
"""The modes that compare two in-process scripts: their kinds, default N1 and N2, and the line."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["respx", "serve", "core", "ingest"])
    parser.add_argument("trees", type=Path, nargs="*", default=[HERE.parent])
    parser.add_argument("--requests", type=int, nargs=2, default=None, metavar=("N1", "N2"))
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, serve_args = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    for tree in args.trees:
        if args.what == "respx":
            n1, n2 = args.requests or (100, 300)
            ours, fresh, bare = (
                per_request(tree, k, n1, n2, []) for k in ("same", "fresh", "bare")
            )
            print(
                f"{tree}: respx door {ours / 1e3:,.0f}k (fresh uuids {fresh / 1e3:,.0f}k), "
                f"bare route {bare / 1e3:,.0f}k instructions per request: "
                f"{ours / bare:.2f}x ({fresh / bare:.2f}x)",
                flush=True,
            )
        elif args.what in _PAIRS:
            kinds, default, say = _PAIRS[args.what]
            n1, n2 = args.requests or default
            print(f"{tree}: {say(*(per_request(tree, k, n1, n2, []) for k in kinds))}", flush=True)
        else:
            n1, n2 = args.requests or (1000, 3000)
            figure = per_request(tree, "serve", n1, n2, serve_args)
            print(
                f"{tree}: serve {' '.join(serve_args)}: {figure / 1e3:,.0f}k instructions/request",
                flush=True,
            )


if __name__ == "__main__":
    main()
