"""What counting results costs on a big journal, in one run.

    python benchmarks/results_cost.py [--requests 100000] [--per-request 10]

Builds a SQLite journal of requests x per_request events through the real core (each
request: per_request / 2 visitors, each with an SDK-shaped impression and a later
conversion, one visitor in ten converting before their impression, one conversion in a
hundred resent), then, each in a fresh process on that file: reading every body with
`json.loads` alone (the floor any reader pays), the journal's scan (bodies parsed and
flattened into events), and `journal_results` (two scans and the counting). Peak RSS of
each process is the memory figure. Results go to benchmarks/RESULTS_COUNTING.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
BASE = json.loads((ROOT / "tests" / "payloads" / "python-sdk-decide-impression.json").read_text())
T = 1_767_225_600_000


def _visitors(r: int, per_request: int) -> list[dict[str, object]]:
    visitors = []
    for k in range(per_request // 2):
        visitor_id = f"v{r}-{k}"
        impression = copy.deepcopy(BASE["visitors"][0])
        impression["visitor_id"] = visitor_id
        event = impression["snapshots"][0]["events"][0]
        event.update(uuid=f"i{r}-{k}", timestamp=T + r * 10)
        early = k == 0 and r % 10 == 0
        resent = k == 1 and r % 100 == 0
        conversion = {
            "visitor_id": visitor_id,
            "attributes": impression.get("attributes", []),
            "snapshots": [
                {
                    "events": [
                        {
                            "entity_id": "111095",
                            "key": "purchase",
                            "uuid": f"c{r - 1 if resent else r}-{k}",
                            "timestamp": T + r * 10 + (-1 if early else 5),
                            "revenue": 4200,
                            "tags": {"revenue": 4200},
                        }
                    ]
                }
            ],
        }
        visitors += [impression, conversion]
    return visitors


def build(path: Path, requests: int, per_request: int) -> float:
    from inprocess import fill

    from mockserver import Endpoint, SqliteJournal

    journal = SqliteJournal(path)
    started = time.perf_counter()
    bodies = (
        json.dumps({**BASE, "visitors": _visitors(r, per_request)}).encode()
        for r in range(requests)
    )
    fill(journal, Endpoint(journal), bodies)
    journal.close()
    return time.perf_counter() - started


def _child(what: str, path: str) -> None:
    """Run one measurement in this (fresh) process; print seconds and peak RSS in MiB."""
    import sqlite3

    from mockserver import SqliteJournal
    from mockserver.journal.results import journal_results

    started = time.perf_counter()
    summary: object
    if what == "loads":
        connection = sqlite3.connect(path)
        summary = sum(
            1 for (body,) in connection.execute("SELECT body FROM requests") if json.loads(body)
        )
    else:
        journal = SqliteJournal(path)
        if what == "scan":
            summary = sum(len(record.events) for record in journal.scan())
        else:
            result, _ = journal_results(journal)
            summary = {"counted": result.counted, "reasons": result.reasons}
        journal.close()
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mib": rss, "summary": summary}))


def measure(path: Path, what: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", what, str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--journal", type=Path, help="keep (or reuse) the built journal here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    events = args.requests * args.per_request
    with tempfile.TemporaryDirectory() as tmp:
        path = args.journal or Path(tmp) / "journal.db"
        if not path.exists():
            built = build(path, args.requests, args.per_request)
            print(f"built {events:,} events in {built:.0f} s", flush=True)
        size = path.stat().st_size / 2**20
        rows = {what: measure(path, what) for what in ("loads", "scan", "results")}
    for what, row in rows.items():
        print(what, row, flush=True)
    floor = float(rows["loads"]["seconds"])
    lines = [
        "# What counting results costs",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end; each figure from a fresh process.",
        f"Command: `python benchmarks/results_cost.py --requests {args.requests} "
        f"--per-request {args.per_request}`",
        f"Journal: SQLite, {events:,} events in {args.requests:,} requests ({size:.0f} MiB).",
        "",
        "| work | seconds | x json.loads floor | peak RSS (MiB) |",
        "|---|---|---|---|",
    ]
    names = {
        "loads": "read every body and `json.loads` it (the floor)",
        "scan": "`journal.scan()`: bodies parsed and flattened into events",
        "results": "`journal_results()`: two scans and the counting",
    }
    for what, row in rows.items():
        seconds, rss = float(row["seconds"]), float(row["rss_mib"])
        lines.append(f"| {names[what]} | {seconds:.1f} | {seconds / floor:.2f}x | {rss:.0f} |")
    lines += ["", f"Counted: `{json.dumps(rows['results']['summary'])}`", ""]
    (HERE / "RESULTS_COUNTING.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
