"""What HTTPS and the forward proxy cost: the same client against the three doors, one run.

    python benchmarks/tls_proxy_cost.py [--duration 5]

`logx-mock serve --memory` is started three ways: plain HTTP, `--tls`, and plain with
`--proxy-port` (the client then posts to https://logx.optimizely.com through
`CONNECT`, TLS terminated by the mock). One client in this process posts one SDK
impression at a time for `--duration` seconds: `requests` (what the Python SDK uses) on
one kept-alive connection, then with a new connection per request (TCP, plus the TLS
handshake, plus CONNECT); and the standard library's `http.client` on one kept-alive
connection. The figures are ratios against plain HTTP measured in the same run; a
Python client is slow, so they bound what an app sees rather than the server's ceiling.

urllib3 (under `requests`) keeps Nagle's algorithm on for connections to a proxy, on
purpose, and writes a request's head and body separately: through any proxy each
request then waits for the server's delayed ACK (about 40 ms on Linux). `http.client`
writes a small request whole, so its column shows what the proxy itself costs.
Results go to benchmarks/TLS_PROXY.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import inprocess
import requests
from run import HERE, ROOT, machine

DOORS = {
    "plain HTTP": [],
    "--tls": ["--tls"],
    "--proxy-port (CONNECT + TLS)": ["--proxy-port", "0"],
}


@contextmanager
def serving(extra: list[str], ca: Path) -> Iterator[dict[str, Any]]:
    """`logx-mock serve` with `extra`; yields how a requests client reaches its events URL."""
    command = [sys.executable, "-m", "mockserver", "serve", "--memory", "--port", "0"]
    command += ["--max-requests", "10000", *extra, "--ca-dir", str(ca)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        banner = "".join(
            proc.stdout.readline() for _ in range(2 + (len(extra) > 0) + ("--proxy-port" in extra))
        )
        url = re.search(r"(https?://\S+/v1/events)", banner)
        proxy = re.search(r"^proxy: (http://\S+)", banner, re.M)
        assert url, banner
        how: dict[str, Any] = {"url": url.group(1), "verify": str(ca / "ca.pem")}
        if proxy:
            how["url"] = "https://logx.optimizely.com/v1/events"
            how["proxies"] = {"https": proxy.group(1)}
        yield how
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def stdlib_connection(how: dict[str, Any]) -> http.client.HTTPConnection:
    """An `http.client` connection to where `how` points (through the proxy's tunnel too)."""
    proxy = how.get("proxies", {}).get("https")
    target = urlsplit(proxy or how["url"])
    if target.scheme == "http" and not proxy:
        return http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    context = ssl.create_default_context(cafile=how["verify"])
    connection = http.client.HTTPSConnection(
        target.hostname, target.port, context=context, timeout=10
    )
    if proxy:
        connection.set_tunnel("logx.optimizely.com", 443)
    return connection


def rate(send: Callable[[], int], duration: float) -> float:
    """Requests per second of `send` (which must answer 204) over `duration` seconds."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration:
        assert send() == 204
        count += 1
    return count / elapsed


def measure(duration: float) -> list[tuple[str, float, float, float]]:
    body = json.dumps(inprocess.BASE).encode()
    headers = {"content-type": "application/json"}
    rows = []
    with tempfile.TemporaryDirectory() as name:
        for door, extra in DOORS.items():
            with serving(extra, Path(name)) as how, requests.Session() as session:
                url = str(how["url"])
                options = {k: v for k, v in how.items() if k != "url"}

                def kept_alive() -> int:
                    return session.post(url, data=body, headers=headers, **options).status_code  # noqa: B023

                def new_connection() -> int:
                    return requests.post(url, data=body, headers=headers, **options).status_code  # noqa: B023

                connection = stdlib_connection(how)

                def stdlib() -> int:
                    connection.request("POST", urlsplit(url).path, body=body, headers=headers)  # noqa: B023
                    response = connection.getresponse()  # noqa: B023
                    response.read()
                    return response.status

                row = (door, rate(kept_alive, duration), rate(new_connection, duration))
                rows.append((*row, rate(stdlib, duration)))
                connection.close()
            print(
                "{:30} requests {:8.0f} req/s, new connection each {:8.0f}; http.client "
                "{:8.0f}".format(*rows[-1])
            )
    return rows


def write(rows: list[tuple[str, float, float, float]], duration: float) -> Path:
    plain = rows[0]
    lines = [
        "# What HTTPS and the forward proxy cost",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python benchmarks/tls_proxy_cost.py --duration {duration:g}`, one run.",
        "",
        f"Machine: {machine()}.",
        "",
        "One client, one SDK impression per request, sequential, "
        "`logx-mock serve --memory` in its own process, loopback.",
        "",
        "| door | requests, kept-alive | vs plain | requests, new connection each | vs plain "
        "| http.client, kept-alive | vs plain |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {door} | {kept:,.0f} req/s | {kept / plain[1]:.2f}x | {fresh:,.0f} req/s "
        f"| {fresh / plain[2]:.2f}x | {std:,.0f} req/s | {std / plain[3]:.2f}x |"
        for door, kept, fresh, std in rows
    ]
    lines += [
        "",
        "urllib3 (under `requests`, so under the Optimizely Python SDK) keeps Nagle's "
        "algorithm on for connections to a proxy and writes a request's head and body "
        "separately, so through any proxy each request waits for the server's delayed ACK "
        "(about 40 ms on Linux). `http.client` writes a small request whole: its column is "
        "what the proxy itself costs.",
    ]
    path = HERE / "TLS_PROXY.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    args = parser.parse_args()
    print(f"wrote {write(measure(args.duration), args.duration)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
