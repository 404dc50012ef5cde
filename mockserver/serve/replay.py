"""`logx-mock replay FILE --to URL`: yesterday's traffic, sent again to another endpoint.

Each request of an NDJSON export is sent as it was recorded: its method, its path under
`--to`, its headers (minus hop-by-hop ones, `Host` and `Content-Length`, which belong to
a connection, not to the request) and its body as sent (a body that came gzipped is
gzipped again: the journal keeps it decoded). Requests start in the file's order, one
at a time unless `--concurrency` says otherwise, at most `--rate` a second. Nothing is
sent anywhere but `--to`: no redirect is followed, no proxy from the environment used.
A request whose body was not kept (`too_large`) is skipped and counted.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import ssl
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from ..endpoint import EVENTS_PATH
from ..errors import ConfigError
from ..export.ndjson import body_bytes
from ..model import RequestRecord, header

__all__ = [
    "DROPPED_HEADERS",
    "Replayed",
    "Tally",
    "parse_rate",
    "prepared",
    "send_all",
    "target_base",
]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
DROPPED_HEADERS = HOP_BY_HOP | {"host", "content-length"}
"""Headers of a connection, not of the request (RFC 9110 7.6.1), and the two the client
sets for the new connection."""
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Replayed:
    """One request, ready to send again."""

    source_id: int
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


def target_base(url: str) -> str:
    """`--to`: a base URL (`http://host:9090`, `https://staging/logx`); a trailing
    `/v1/events` is taken off, since each request brings its own path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--to {url!r} is not an http(s) URL; give e.g. http://127.0.0.1:9090")
    base = url.rstrip("/")
    return base[: -len(EVENTS_PATH)] if base.endswith(EVENTS_PATH) else base


def parse_rate(text: str) -> float:
    """`--rate 50/s` (or `50`): requests a second."""
    number = text.removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        rate = 0.0
    if not rate > 0 or rate == float("inf"):
        raise ConfigError(f"--rate {text!r} is not a rate; give requests a second, e.g. 50/s")
    return rate


def prepared(record: RequestRecord, base: str, *, strict: bool = False) -> Replayed | None:
    """The request to send for `record`, or None when its body was not kept."""
    body = body_bytes(record)
    if body is None:
        return None
    listed = {n.strip().lower() for n in (header(record.headers, "connection") or "").split(",")}
    dropped = DROPPED_HEADERS | listed
    headers = [(name, value) for name, value in record.headers if name.lower() not in dropped]
    encoding = (header(record.headers, "content-encoding") or "").strip().lower()
    if encoding in ("gzip", "x-gzip") and not body.startswith(_GZIP_MAGIC):
        body = gzip.compress(body)  # the journal kept it decoded: send it as it came
    if strict:
        headers = [h for h in headers if h[0].lower() != "x-optimizely-strict"]
        headers.append(("x-optimizely-strict", "true"))
    return Replayed(record.id, record.method, base + record.path, headers, body)


@dataclass
class Tally:
    """What the answers were: a count per status (or per reason there was none)."""

    statuses: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    sent: int = 0
    failed: int = 0
    """Answers that were not 2xx, and requests that got no answer."""

    def answered(self, outcome: str, ok: bool) -> None:
        self.sent += 1
        self.statuses[outcome] += 1
        self.failed += not ok

    def lines(self) -> list[str]:
        """The summary: one line per status, most frequent first."""
        found = [f"  {status:<28} {count:>8,}" for status, count in self.statuses.most_common()]
        if self.skipped:
            found.append(f"  {'skipped (body not kept)':<28} {self.skipped:>8,}")
        return found


def client_for_replay(concurrency: int) -> httpx.AsyncClient:
    """A client that goes only where it is told: no proxy or redirect; `SSL_CERT_FILE`
    is honoured (a `serve --tls` target's CA)."""
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        verify=context,
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=concurrency),
    )


async def _send(client: httpx.AsyncClient, item: Replayed) -> tuple[str, bool]:
    try:
        response = await client.request(
            item.method, item.url, headers=item.headers, content=item.body
        )
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})", False
    return str(response.status_code), 200 <= response.status_code < 300


async def send_all(
    items: Iterable[Replayed | None],
    *,
    concurrency: int = 1,
    rate: float | None = None,
    on_done: Callable[[], None] = lambda: None,
) -> Tally:
    """Send every item, starting them in order, at most `concurrency` at once and
    `rate` a second; None items (not kept) are skipped."""
    tally = Tally()
    slots = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending: set[asyncio.Task[None]] = set()

    async def one(item: Replayed) -> None:
        try:
            tally.answered(*(await _send(client, item)))
        finally:
            slots.release()
            on_done()

    async with client_for_replay(concurrency) as client:
        for index, item in enumerate(items):
            if item is None:
                tally.skipped += 1
                on_done()
                continue
            if rate is not None:
                await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
            await slots.acquire()
            task = asyncio.create_task(one(item))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
    return tally
