"""`logx-mock serve --db`'s CPU time per request, by thread, for source trees measured
alternately in one run.

    python benchmarks/serve_cpu.py TREE [TREE ...] [--payload "batch of 10"] [--seconds 4]
                                   [--rounds 2]

Each round starts `serve` from each tree in turn (that tree first on the path, from an empty
folder so no other checkout is imported), warms it up for a second with wrk, then loads it
for `--seconds` (wrk -t1 -c32, the benchmark's body with a fresh uuid per event, strict) and
reads every thread's CPU time (user + system, /proc/PID/task/TID/stat) before and after.
It prints, per tree and round, req/s and the CPU µs per request answered: the whole
process, the event loop's thread, and each other thread that did work (the journal's
writer is the biggest of those). On a shared machine CPU time per request is steadier than
req/s; alternating the trees lets a busy moment hit both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import run

PAYLOADS = (run.ONE, run.TEN, run.HUNDRED)


def thread_ticks(pid: int) -> dict[str, int]:
    """Each thread's CPU time so far, in clock ticks, by thread id."""
    ticks: dict[str, int] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        ticks[stat.parent.name] = int(fields[11]) + int(fields[12])
    return ticks


def measure(tree: Path, body: Path, seconds: int, folder: Path) -> tuple[float, float, list[float]]:
    """req/s, the main thread's and the other threads' CPU µs per request."""
    port = run.free_port()
    command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port)]
    command += ["--db", str(folder / f"{port}.db")]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=env, cwd=folder, stdout=log, stderr=log)
        try:
            run.wait_until_up(port)
            run.wrk(port, body, True, 1)
            before = thread_ticks(server.pid)
            rps = run.wrk(port, body, True, seconds)[0]
            after = thread_ticks(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=15)
    per_request = 1e6 / os.sysconf("SC_CLK_TCK") / (rps * seconds)
    used = {tid: (after[tid] - before.get(tid, 0)) * per_request for tid in after}
    main = used.pop(str(server.pid), 0.0)
    return rps, main, sorted((cpu for cpu in used.values() if cpu >= 0.5), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", type=Path, nargs="+")
    parser.add_argument("--payload", choices=PAYLOADS, default=run.TEN)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        body = run.bodies(folder, quick=True)[args.payload]
        for _ in range(args.rounds):
            for tree in args.trees:
                rps, main_cpu, others = measure(tree.resolve(), body, args.seconds, folder)
                total = main_cpu + sum(others)
                threads = " ".join(f"{cpu:.1f}" for cpu in others)
                print(
                    f"{tree!s:30} {args.payload:13} {rps:8.0f} req/s  CPU µs/request: "
                    f"{total:7.1f} (loop thread {main_cpu:.1f}; others {threads})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
