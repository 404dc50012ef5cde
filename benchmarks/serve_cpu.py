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
import itertools
import os
import subprocess
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


def worker_pids(pid: int) -> list[int]:
    """`pid`'s child processes (`serve --workers`' workers), or `pid` itself if none."""
    children: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            children.append(int(stat.parent.name))
    return sorted(children) or [pid]


def measure(
    tree: Path, body: Path, seconds: int, folder: Path, workers: int = 1
) -> tuple[float, float, list[float]]:
    """req/s, the event loop threads' and the other threads' CPU µs per request (with
    `workers` > 1, each figure is summed over the workers: the n-th busiest other thread of
    each, and the supervisor's process as one more)."""
    port = run.free_port()
    command = run.serve_command(port, folder / f"{port}.db", workers)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=env, cwd=folder, stdout=log, stderr=log)
        try:
            run.wait_until_up(port)
            run.wrk(port, body, True, 1)
            pids = worker_pids(server.pid) if workers > 1 else [server.pid]
            if workers > 1:
                pids.append(server.pid)
            before = {pid: thread_ticks(pid) for pid in pids}
            rps = run.wrk(port, body, True, seconds)[0]
            after = {pid: thread_ticks(pid) for pid in pids}
        finally:
            server.terminate()
            server.wait(timeout=15)
    per_request = 1e6 / os.sysconf("SC_CLK_TCK") / (rps * seconds)
    main = 0.0
    others: list[float] = []
    for pid in pids:
        used = {
            tid: (after[pid][tid] - before[pid].get(tid, 0)) * per_request for tid in after[pid]
        }
        if workers > 1 and pid == server.pid:
            others.append(sum(used.values()))  # the supervisor
            continue
        main += used.pop(str(pid), 0.0)
        for rank, cpu in enumerate(sorted(used.values(), reverse=True)):
            if rank == len(others):
                others.append(0.0)
            others[rank] += cpu
    return rps, main, sorted((cpu for cpu in others if cpu >= 0.5), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", type=Path, nargs="+")
    parser.add_argument("--payload", choices=PAYLOADS, default=run.TEN)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="e.g. 1 2")
    parser.add_argument("--visitors", choices=list(run.VISITORS), default="one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        body = run.bodies(folder, True, args.visitors == "spread")[args.payload]
        for _ in range(args.rounds):
            for tree, workers in itertools.product(args.trees, args.workers):
                rps, main_cpu, others = measure(tree.resolve(), body, args.seconds, folder, workers)
                total = main_cpu + sum(others)
                threads = " ".join(f"{cpu:.1f}" for cpu in others)
                print(
                    f"{tree!s:20} w={workers} {args.payload:13} {rps:8.0f} req/s  CPU µs/request: "
                    f"{total:7.1f} (loop thread {main_cpu:.1f}; others {threads})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
