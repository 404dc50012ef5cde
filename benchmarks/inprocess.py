"""In-process figures: the respx path, 3.5 MB ingest, threaded start, a 1M-event journal."""

from __future__ import annotations

import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import respx

from mockserver import CoreRequest, Endpoint, Journal, MemoryJournal, SqliteJournal, ThreadedServer
from pytest_plugin import logx_router

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make contract_tests importable
from contract_tests.corpus import near_limit_body as corpus_near_limit  # noqa: E402

BASE = json.loads((ROOT / "tests" / "payloads" / "python-sdk-decide-impression.json").read_text())
URL = "https://logx.optimizely.com/v1/events"


def near_limit_body() -> bytes:
    """The contract corpus's batch just under 3.5 MB, with `__UUID__` placeholders for wrk."""
    return corpus_near_limit("__UUID__")


CLOCK = time.perf_counter
"""What `best_of` times with: wall time for the recorded figures; `before_after.py` uses
the process's CPU time, which a busy shared machine disturbs less."""


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of `runs` timings: the least disturbed by the rest of the machine."""
    timings = []
    for _ in range(runs):
        started = CLOCK()
        work()
        timings.append(CLOCK() - started)
    return min(timings)


def respx_ratio(n: int = 2000) -> tuple[float, float]:
    body = json.dumps(BASE)
    headers = {"content-type": "application/json"}

    def ours() -> None:
        with logx_router(Endpoint(MemoryJournal())), httpx.Client() as client:
            for _ in range(n):
                client.post(URL, content=body, headers=headers)

    def bare() -> None:
        with respx.mock() as router, httpx.Client() as client:
            router.post(URL).respond(204)
            for _ in range(n):
                client.post(URL, content=body, headers=headers)

    return best_of(3, ours) / n, best_of(3, bare) / n


def impression_bodies(count: int, visitors: int = 1, *, spread: bool = False) -> list[bytes]:
    """The SDK impression (`visitors` copies of its visitor in one batch), each event with
    a random uuid of its own (none a duplicate), as an SDK makes them and wrk sends them;
    `spread`: each visitor with a random id of its own too (an application's traffic)."""
    batch = dict(BASE, visitors=BASE["visitors"] * visitors)
    text = json.dumps(batch)
    if spread:
        text = text.replace('"user-123"', '"a68cf1ad-0393-4e18-af87-efe8f01a7c9c"')
    parts = text.split("a68cf1ad-0393-4e18-af87-efe8f01a7c9c")
    return [
        "".join(f"{part}{uuid.uuid4()}" for part in parts[:-1]).encode() + parts[-1].encode()
        for _ in range(count)
    ]


def handle_us(n: int = 5000, visitors: int = 1) -> float:
    """One SDK impression (strict, fresh uuid; or a batch of `visitors` of them) through
    `Endpoint.handle` on a memory journal: the core's whole work per request, without
    HTTP. µs per request."""
    batches = iter([impression_bodies(n, visitors) for _ in range(5)])
    headers = [("content-type", "application/json"), ("x-optimizely-strict", "true")]

    def run() -> None:
        endpoint = Endpoint(MemoryJournal())
        for body in next(batches):
            request = CoreRequest("POST", "/v1/events", body, headers=headers, peer="127.0.0.1")
            endpoint.handle(request)

    return best_of(5, run) / n * 1e6


_INGEST_RUNS = 5
"""Timed ingests (the best counts), each of a body of its own."""


def ingest_ratio() -> tuple[float, float]:
    body = near_limit_body().replace(b"__UUID__", b"u-")
    with tempfile.TemporaryDirectory() as tmp:
        journal = SqliteJournal(Path(tmp) / "j.db")
        endpoint = Endpoint(journal)
        # Each run its own uuids (none a duplicate), made before the clock starts: the
        # 3.5 MB `bytes.replace` (~5 ms) is not the endpoint's work.
        bodies = iter([body.replace(b'"u-', f'"r{i}-'.encode()) for i in range(_INGEST_RUNS)])

        def ingest() -> None:
            request = CoreRequest(
                "POST",
                "/v1/events",
                next(bodies),
                headers=[("content-type", "application/json"), ("x-optimizely-strict", "true")],
                peer="127.0.0.1",
            )
            outcome = endpoint.handle(request)
            assert outcome.status == 204, outcome.body[:300]

        ours = best_of(_INGEST_RUNS, ingest)
        journal.close()
    return ours, best_of(_INGEST_RUNS, lambda: json.loads(body))


def threaded_start() -> float:
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        server = ThreadedServer().start()
        timings.append(time.perf_counter() - started)
        server.stop()
    return statistics.median(timings)


def fill(journal: Journal, endpoint: Endpoint, bodies: Iterable[bytes]) -> None:
    """Judge and journal each body through the core, a few hundred commits in flight."""
    pending = []
    for body in bodies:
        request = CoreRequest(
            "POST",
            "/v1/events",
            body,
            headers=[("content-type", "application/json")],
            peer="127.0.0.1",
        )
        pending.append(journal.append(endpoint._judge(request)))
        if len(pending) >= 500:
            for future in pending:
                future.result()
            pending = []
    for future in pending:
        future.result()


def big_journal(requests: int = 100_000, per_request: int = 10) -> tuple[float, float, float, int]:
    """Fill a journal with requests x per_request events; query it; RSS of a server on it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        journal = SqliteJournal(path)
        endpoint = Endpoint(journal)
        batch = copy.deepcopy(BASE)
        batch["visitors"] = batch["visitors"] * per_request
        template = json.dumps(batch)
        bodies = (
            template.replace('"a68cf1ad-0393-4e18-af87-efe8f01a7c9c"', f'"e{r}-x"', 1)
            .replace('"user-123"', f'"visitor-{r}"', 1)
            .encode()
            for r in range(requests)
        )
        fill(journal, endpoint, bodies)
        events = len(journal.events(limit=1)) and requests * per_request
        by_visitor = best_of(5, lambda: journal.events(visitor_id="visitor-54321", limit=100))
        by_key = best_of(5, lambda: journal.events(key="campaign_activated", limit=100))
        journal.close()
        rss = server_rss(path)
    return by_visitor, by_key, rss, events


def server_rss(path: Path) -> float:
    """MiB resident in a `logx-mock serve` on `path` after a few queries."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--db", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = re.search(r"(http://\S+?)/v1/events", proc.stdout.readline()).group(1)  # type: ignore[union-attr]
        for params in ({"visitor_id": "visitor-7"}, {"key": "campaign_activated"}, {}):
            httpx.get(url + "/_mock/events", params={**params, "limit": 100}, timeout=60)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(*, quick: bool) -> list[tuple[str, str, str]]:
    rows = []
    ours, bare = respx_ratio()
    rows.append(
        (
            "respx path per request (`logx_mock`) vs a bare respx route answering 204",
            f"{ours * 1e6:.0f} µs vs {bare * 1e6:.0f} µs = {ours / bare:.2f}x",
            "<= 1.3x",
        )
    )
    print(rows[-1], flush=True)
    for visitors, name in ((1, "one SDK impression"), (10, "a batch of ten impressions")):
        core = handle_us(5000 // visitors, visitors)
        rows.append(
            (
                f"the core's work for {name} (`Endpoint.handle`, strict, memory journal)",
                f"{core:.0f} µs",
                "-",
            )
        )
        print(rows[-1], flush=True)
    start = threaded_start()
    rows.append(("threaded server ready (median of 10)", f"{start * 1000:.1f} ms", "<= 200 ms"))
    print(rows[-1], flush=True)
    if quick:
        return rows
    ingest, loads = ingest_ratio()
    rows.append(
        (
            "3.5 MB batch ingest (parse, strict validation, anonymization, commit, events) "
            "vs `json.loads`",
            f"{ingest * 1000:.0f} ms vs {loads * 1000:.0f} ms = {ingest / loads:.2f}x",
            "<= 2x",
        )
    )
    print(rows[-1], flush=True)
    by_visitor, by_key, rss, events = big_journal()
    rows.append(
        (
            f"journal of {events:,} events: query by visitor_id",
            f"{by_visitor * 1000:.2f} ms",
            "<= 20 ms",
        )
    )
    rows.append(
        (
            f"journal of {events:,} events: query by key (first 100)",
            f"{by_key * 1000:.2f} ms",
            "<= 20 ms",
        )
    )
    rows.append(("`logx-mock serve` RSS on that journal", f"{rss:.0f} MiB", "<= 250 MB"))
    print(rows[-3:], flush=True)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    for row in measure(quick="--quick" in sys.argv):
        print(row)
