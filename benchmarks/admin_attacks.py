"""The issue #20 attacks on the admin surface, measured against two checkouts in one run.

    python benchmarks/admin_attacks.py [--before PATH] [--after PATH]

Each checkout's `logx-mock serve --memory` is started on 127.0.0.1 (PYTHONPATH set to the
checkout), and each attack is timed:

- read amplification: one batch with a 100 KB attribute and 2,000 tiny events, then
  `GET /_mock/events?limit=100000`: the answer's size and seconds, and how long a
  `GET /_mock/health` sent meanwhile waited;
- waiters: 50 long-polls (`after=0`) for a visitor who never comes on a journal of
  200,000 events,
  then 10 batches: the seconds each POST took (median, max);
- crowd: 64 page streams and 250 long-polls for nobody held open, then 1,000 batches one
  after the other: the seconds for all of them.

Seconds are recorded, never asserted; the results go to benchmarks/ADMIN_ATTACKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import impression  # noqa: E402


class Server:
    def __init__(self, checkout: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        command = [sys.executable, "-m", "mockserver", "serve", "--memory"]
        self.proc = subprocess.Popen(
            [*command, "--port", "0", "--max-requests", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=checkout,  # `-m` puts the working folder first on the path
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()
        self.url = banner.split("/v1/events")[0].split()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def amplification(server: Server) -> dict[str, Any]:
    batch = impression("amplifier")
    visitor = batch["visitors"][0]
    visitor["attributes"][0]["value"] = "a" * 100_000
    snapshot = visitor["snapshots"][0]
    snapshot["events"] = [dict(snapshot["events"][0], uuid=f"u{i}") for i in range(2_000)]
    body = json.dumps(batch).encode()
    requests.post(
        server.url + "/v1/events",
        data=body,
        timeout=60,
        headers={"content-type": "application/json"},
    )
    waited: list[float] = []

    def health_meanwhile() -> None:
        time.sleep(0.05)
        start = time.perf_counter()
        requests.get(server.url + "/_mock/health", timeout=120)
        waited.append(time.perf_counter() - start)

    probe = threading.Thread(target=health_meanwhile)
    probe.start()
    start = time.perf_counter()
    answer = requests.get(server.url + "/_mock/events", params={"limit": 100_000}, timeout=300)
    seconds = time.perf_counter() - start
    probe.join()
    return {
        "batch_kb": round(len(body) / 1000),
        "answer_mb": round(len(answer.content) / 1e6, 1),
        "answer_s": round(seconds, 2),
        "health_waited_s": round(waited[0], 3),
    }


def waiters(server: Server) -> dict[str, Any]:
    requests.delete(server.url + "/_mock/requests", timeout=60)
    with requests.Session() as session:
        for i in range(400):
            batch = impression(f"bulk-{i}")
            snapshot = batch["visitors"][0]["snapshots"][0]
            snapshot["events"] = [dict(snapshot["events"][0], uuid=f"{i}-{k}") for k in range(500)]
            session.post(server.url + "/v1/events", json=batch, timeout=60)

    def long_poll() -> None:
        params = {"after": 0, "visitor_id": "nobody", "wait": 60}
        with contextlib.suppress(requests.RequestException):
            requests.get(server.url + "/_mock/events", params=params, timeout=120)

    polls = [threading.Thread(target=long_poll, daemon=True) for _ in range(50)]
    for poll in polls:
        poll.start()
    time.sleep(1.0)
    took = []
    with requests.Session() as session:
        for i in range(10):
            start = time.perf_counter()
            session.post(server.url + "/v1/events", json=impression(f"v{i}"), timeout=300)
            took.append(time.perf_counter() - start)
    return {"post_median_s": round(statistics.median(took), 3), "post_max_s": round(max(took), 3)}


def crowd(server: Server) -> dict[str, Any]:
    """64 page streams and 250 long-polls for nobody held open, then 1,000 POSTs."""
    port = int(server.url.rsplit(":", 1)[1])
    paths = ["/_mock/stream"] * 64 + ["/_mock/events?after=0&visitor_id=nobody&wait=60"] * 250
    held = []
    for path in paths:
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        held.append(sock)
    time.sleep(1.0)
    start = time.perf_counter()
    with requests.Session() as session:
        for i in range(1_000):
            session.post(server.url + "/v1/events", json=impression(f"v{i}"), timeout=300)
    seconds = time.perf_counter() - start
    for sock in held:
        sock.close()
    return {"posts_1000_s": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout without the fixes")
    parser.add_argument("--after", type=Path, default=ROOT)
    args = parser.parse_args()
    runs = (
        [("before", args.before), ("after", args.after)] if args.before else [("after", args.after)]
    )
    for name, checkout in runs:
        for scenario in (amplification, waiters, crowd):
            server = Server(checkout)  # a fresh server each: nobody left waiting from before
            try:
                print(name, scenario.__name__, scenario(server), flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
