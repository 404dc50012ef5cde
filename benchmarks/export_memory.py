"""A million-request export in constant memory, measured in one run.

    python benchmarks/export_memory.py [--requests 1000000] [--journal FILE]

Builds a SQLite journal of `--requests` SDK-shaped requests through the real core (one
impression each, every visitor and uuid its own), then exports the newest 10,000,
100,000 and all of them, as NDJSON and as HAR, each in a fresh process:

- `logx-mock export --db FILE` (the journal read directly), peak RSS of that process;
- `logx-mock export --url` from a `logx-mock serve --db FILE` started for the run: the
  server's peak RSS (VmHWM) after each export, and the client's.

Memory is the figure; seconds are recorded beside it, never asserted. The results go to
benchmarks/EXPORT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
BASE = (ROOT / "tests" / "payloads" / "python-sdk-decide-impression.json").read_text()
UUID = "a68cf1ad-0393-4e18-af87-efe8f01a7c9c"


def build(path: Path, requests: int) -> float:
    from inprocess import fill

    from mockserver import Endpoint, SqliteJournal

    assert UUID in BASE and '"user-123"' in BASE
    journal = SqliteJournal(path)
    started = time.perf_counter()
    bodies = (
        BASE.replace(UUID, f"e{r}-x", 1).replace('"user-123"', f'"visitor-{r}"', 1).encode()
        for r in range(requests)
    )
    fill(journal, Endpoint(journal), bodies)
    journal.close()
    return time.perf_counter() - started


def _child(source: str, fmt: str, after: str) -> None:
    """One export in this fresh process, to /dev/null; prints seconds, bytes, peak RSS."""
    from mockserver.serve.cli import main

    imported = vm(os.getpid(), "VmRSS")  # the interpreter and the package, before any export
    out = Path(tempfile.mkdtemp()) / "export"
    flag = "--url" if source.startswith("http") else "--db"
    started = time.perf_counter()
    code = main(["export", flag, source, "--format", fmt, "--after", after, "-o", str(out)])
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"code": code, "seconds": seconds, "bytes": size, "rss_mib": rss, "imported": imported}
    print(json.dumps(row))


def export(source: str, fmt: str, after: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", source, fmt, str(after)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    if done.returncode:
        raise SystemExit(f"export {source} {fmt} failed:\n{done.stderr}")
    row: dict[str, Any] = json.loads(done.stdout)
    if row["code"] != 0:
        raise SystemExit(f"export {source} {fmt} exited {row['code']}:\n{done.stderr}")
    return row


def vm(pid: int, name: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"{name}:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--journal", type=Path, help="keep (or reuse) the built journal here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n < args.requests] + [args.requests]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.journal or Path(tmp) / "journal.db"
        if not path.exists():
            built = build(path, args.requests)
            print(f"built {args.requests:,} requests in {built:.0f} s", flush=True)
        mib = path.stat().st_size / 2**20
        rows = []
        for fmt in ("ndjson", "har"):
            for size in sizes:
                row = export(str(path), fmt, args.requests - size)
                rows.append(("--db", fmt, size, row, None))
                print(rows[-1], flush=True)
        server = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--db", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            found = re.search(r"(http://\S+?)/v1/events", server.stdout.readline())
            assert found is not None
            url = found.group(1)
            idle = vm(server.pid, "VmRSS")
            for fmt in ("ndjson", "har"):
                for size in sizes:
                    row = export(url, fmt, args.requests - size)
                    rows.append(("--url", fmt, size, row, vm(server.pid, "VmHWM")))
                    print(rows[-1], flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    write_results(args.requests, mib, idle, rows)


def write_results(requests: int, mib: float, idle: float, rows: list[Any]) -> None:
    lines = [
        "# A million-request export in constant memory",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end (shared with other engineers' runs).",
        f"Command: `python benchmarks/export_memory.py --requests {requests}`",
        f"Journal: SQLite, {requests:,} requests of one SDK impression each ({mib:.0f} MiB). "
        "Each export in a fresh process; the newest N requests (`--after`).",
        f"Server: `logx-mock serve --db` on that file, {idle:.1f} MiB resident before the "
        "exports; its peak (VmHWM) after each `--url` export, which streams "
        "`GET /_mock/export`.",
        "",
        "| from | format | requests | output MiB | seconds | requests/s | exporter RSS after "
        "imports MiB | exporter peak RSS MiB | server peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source, fmt, size, row, server in rows:
        seconds = float(row["seconds"])
        peak = "" if server is None else f"{server:.1f}"
        lines.append(
            f"| `{source}` | {fmt} | {size:,} | {row['bytes'] / 2**20:,.0f} | {seconds:.1f} | "
            f"{size / seconds:,.0f} | {float(row['imported']):.1f} | {float(row['rss_mib']):.1f} "
            f"| {peak} |"
        )
    lines += [
        "",
        "Reading it: memory is the figure. An export holds one chunk of a few hundred requests "
        "and one 64 KB chunk of output, so the exporter's peak stays a few MiB above what its "
        "imports take, and the server's a few MiB above its idle size, whether it exports ten "
        "thousand requests or a million. The seconds are those of a shared 2-core machine "
        "(other engineers' test suites ran beside this run): they show the order of magnitude, "
        "not a speed to compare.",
        "",
    ]
    (HERE / "EXPORT.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
