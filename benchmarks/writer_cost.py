"""The SQLite journal writer's own work per request: instructions (valgrind), or CPU time.

    python benchmarks/writer_cost.py [TREE ...] [--visitors 10] [--group 4] [--cpu] [--spread]

Strict SDK batches (`--visitors` impressions each, a fresh uuid per event, as wrk sends them;
`--spread`: a fresh visitor id per event too, an application's traffic) are judged first;
then the writer's own code (`_run_batch`: history, rows, inserts, commit, wake-ups) commits
them `--group` requests per transaction on the measuring thread, as the
writer thread does under load (`serve` with wrk -c32 commits a few requests at a time).
Instructions are (count(N2) - count(N1)) / (N2 - N1) over the committed requests alone
(start-up and judging cancel out; the process ends before the closing checkpoint, which is
the checkpoint thread's work). A busy shared machine cannot disturb that count; `--cpu`
gives the thread's CPU time instead (best of 3 rounds), quicker but disturbed. Trees default
to this checkout; each runs with itself first on the path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from instructions import _count

HERE = Path(__file__).parent
_WRITER = """
import os, sys, tempfile, time
from concurrent.futures import Future
from pathlib import Path
import inprocess
from mockserver import CoreRequest, Endpoint, SqliteJournal
from mockserver.journal.group import _Job

visitors, group, n, most, spread = (
    int(os.environ[k]) for k in ("VISITORS", "GROUP", "N", "MOST", "SPREAD")
)
headers = [("content-type", "application/json"), ("x-optimizely-strict", "true")]
with tempfile.TemporaryDirectory() as tmp:
    journal = SqliteJournal(Path(tmp) / "j.db")
    journal._checkpoints.close()  # by hand below, outside what is measured
    endpoint = Endpoint(journal)
    # judged alike for every n
    bodies = inprocess.impression_bodies(2 * most, visitors, spread=bool(spread))
    records = [
        endpoint._judge(CoreRequest("POST", "/v1/events", b, headers=headers, peer="127.0.0.1"))
        for b in bodies
    ]

    def commit(part):
        spent = 0.0
        for start in range(0, len(part), group):
            chunk = part[start : start + group]
            began = time.thread_time()
            journal._run_batch([_Job(chunk, [Future() for _ in chunk])])
            spent += time.thread_time() - began
        return spent

    commit(records[:most])  # a journal holding as many already
    journal._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    spent = commit(records[most : most + n])
    assert all(record.id for record in records[: most + n])
    print(spent / n * 1e6, flush=True)
    os._exit(0)  # no closing checkpoint: the writer's work only
"""


def _env(tree: Path, visitors: int, group: int, n: int, most: int, spread: bool) -> dict[str, str]:
    """Judge `2 * most` requests; commit `most`, then the `n` measured."""
    path = os.pathsep.join([str(tree), str(HERE)])
    sizes = {"VISITORS": visitors, "GROUP": group, "N": n, "MOST": most, "SPREAD": int(spread)}
    return {"PYTHONPATH": path, **{k: str(v) for k, v in sizes.items()}}


def instructions(
    tree: Path, visitors: int, group: int, n1: int, n2: int, spread: bool = False
) -> float:
    """Instructions per committed request."""

    def count(n: int) -> int:
        env = _env(tree, visitors, group, n, n2, spread)
        return _count([sys.executable, "-c", _WRITER], env, tree)

    return (count(n2) - count(n1)) / (n2 - n1)


def cpu_us(tree: Path, visitors: int, group: int, n: int, spread: bool = False) -> float:
    """The measuring thread's CPU µs per committed request, best of 3."""
    runs = []
    for _ in range(3):
        env = {**os.environ, **_env(tree, visitors, group, n, n, spread)}
        out = subprocess.run(
            [sys.executable, "-c", _WRITER], env=env, cwd=tree, capture_output=True, text=True
        )
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        runs.append(float(out.stdout.split()[-1]))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", type=Path, nargs="*", default=[HERE.parent])
    parser.add_argument("--visitors", type=int, default=10, help="impressions per batch")
    parser.add_argument("--group", type=int, default=4, help="requests per transaction")
    parser.add_argument("--cpu", action="store_true", help="CPU time, not instructions")
    parser.add_argument("--spread", action="store_true", help="a fresh visitor id per event")
    args = parser.parse_args()
    for tree in args.trees:
        where = tree.resolve()
        label = f"{tree}: {args.visitors} event(s) per request, {args.group} per commit:"
        if args.cpu:
            figure = cpu_us(where, args.visitors, args.group, 2000, args.spread)
            print(f"{label} {figure:.1f} CPU µs per request", flush=True)
        else:
            n1, n2 = (40, 200) if args.visitors >= 10 else (80, 400)
            figure = instructions(where, args.visitors, args.group, n1, n2, args.spread)
            print(f"{label} {figure / 1e3:,.0f}k instructions per request", flush=True)


if __name__ == "__main__":
    main()
