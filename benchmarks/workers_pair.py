"""One worker against `--workers 2`, alternating, in one sitting (issue #16's workers target).

    python benchmarks/workers_pair.py [--rounds 3] [--duration 8] [--tree PATH ...]

Each round starts `logx-mock serve --db FRESH.db` and then `... --workers 2` (as
benchmarks/run.py does: wrk -t1 -c32, one SDK impression with a fresh uuid, strict, a 2 s
warm-up), and prints req/s, p99, the servers' CPU µs per request (worker processes
included) and wrk's own CPU share: on a 2-core machine wrk's share is what the two workers
cannot have. With several `--tree`s, each round runs every tree's pair (each tree's
code first on the path), so before and after meet the same moments of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from run import (
    CONNECTIONS,
    HERE,
    ONE,
    bodies,
    cpu_seconds,
    free_port,
    serve_command,
    wait_until_up,
    wrk,
)

ROOT = HERE.parent


def measure(tree: Path, workers: int, body: Path, db: Path, duration: int) -> str:
    port = free_port()
    command = serve_command(port, db, workers)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=tree, env=env)
        try:
            wait_until_up(port)
            wrk(port, body, True, 2)  # warm up
            before = cpu_seconds(proc.pid)
            wrk_before = os.times()
            rps, _, p99, errors = wrk(port, body, True, duration)
            wrk_after = os.times()
            server = cpu_seconds(proc.pid) - before
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    wrk_cpu = (wrk_after.children_user + wrk_after.children_system) - (
        wrk_before.children_user + wrk_before.children_system
    )
    requests = max(rps * duration, 1)
    return (
        f"{tree.name:10} workers={workers} {rps:8.0f} req/s  p99 {p99:7.2f} ms  "
        f"errors {errors}  server {server / requests * 1e6:6.1f} us/req "
        f"({server / duration:4.2f} cores)  wrk {wrk_cpu / duration:4.2f} cores "
        f"({wrk_cpu / requests * 1e6:4.1f} us/req)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--tree", type=Path, action="append")
    parser.add_argument("--only", type=int, choices=(1, 2), help="only this many workers")
    args = parser.parse_args()
    trees = args.tree or [ROOT]
    print(f"wrk -t1 -c{CONNECTIONS} -d{args.duration}s, {ONE}, strict; {time.strftime('%H:%M')}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        body = bodies(tmp, quick=True)[ONE]
        for round_ in range(args.rounds):
            for index, tree in enumerate(trees):
                for workers in (1, 2) if args.only is None else (args.only,):
                    db = tmp / f"r{round_}-{index}-{workers}.db"
                    print(measure(tree.resolve(), workers, body, db, args.duration), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
