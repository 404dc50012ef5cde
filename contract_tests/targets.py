"""Every way into logx-mock, behind one small interface: send a request, read the journal.

Doors: the respx routes (sync and async httpx), the `requests` routes (responses),
the non-patching transport, the
Starlette app through `httpx.ASGITransport`, the threaded server,
`logx-mock serve` as a subprocess on a SQLite file, the same on a PostgreSQL
database (a throwaway server of its own, `pgserver.py`), and that subprocess again
over HTTPS (`--tls`, verified against its CA) and behind its forward proxy
(`--proxy-port`: `CONNECT logx.optimizely.com:443`, or `cdn.optimizely.com:443` and
`config.optimizely.com:443` for the datafile cases, TLS terminated by the mock; and
absolute-form `http://logx.optimizely.com/...` requests to the same proxy).
`UrlTarget` is any running endpoint (`--logx-url`); it has no journal.

Every door is configured the same: 127.0.0.1/32 is a trusted proxy, so
`X-Forwarded-For` cases resolve identically whether the peer is a real socket
or the in-process doors' 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests

from mockserver import (
    Datafile,
    Datafiles,
    Endpoint,
    EndpointConfig,
    MemoryJournal,
    ThreadedServer,
    TrustedProxies,
    create_app,
)
from mockserver.cdn import DATAFILE_HOSTS, DATAFILES_PREFIX
from pytest_plugin import LogxTransport, logx_requests, logx_router

from .corpus import Request
from .pgserver import PostgresServer

__all__ = ["DOORS", "Response", "Target", "UrlTarget", "open_target"]

LOGX_HOST = "logx.optimizely.com"
TRUST = "127.0.0.1/32"
DOORS = [
    "respx-sync",
    "respx-async",
    "requests",
    "transport",
    "asgi",
    "threaded-server",
    "serve-subprocess",
    "serve-postgres",
    "serve-tls",
    "serve-proxy",
    "serve-proxy-http",
]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def origin(path: str, scheme: str = "https") -> str:
    """The real host a client sends `path` to: datafiles to the CDN's two hosts (as the
    SDKs fetch them), everything else to the Log Endpoint."""
    if path.startswith(DATAFILES_PREFIX + "auth/"):
        return f"{scheme}://{DATAFILE_HOSTS[1]}"
    if path.startswith(DATAFILES_PREFIX):
        return f"{scheme}://{DATAFILE_HOSTS[0]}"
    return f"{scheme}://{LOGX_HOST}"


def _response(response: httpx.Response) -> Response:
    return Response(response.status_code, dict(response.headers), response.content)


def _endpoint() -> Endpoint:
    return Endpoint(
        MemoryJournal(), config=EndpointConfig(trusted_proxies=TrustedProxies.parse([TRUST]))
    )


class Target:
    """A door into logx-mock; subclasses say how to send and how to read the journal."""

    name = "target"
    has_journal = True

    def send(self, request: Request) -> Response:
        raise NotImplementedError

    def journal(self) -> list[dict[str, Any]]:
        """Every journaled request as the admin API shows it (with events)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the journal, the faults and any datafile."""
        raise NotImplementedError

    def use_datafile(self, text: bytes) -> None:
        """Check the next requests against this datafile."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the target started."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class InProcess(Target):
    """Doors that share a process with the test: the journal is read directly."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.endpoint = _endpoint()

    def journal(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.endpoint.journal.requests(limit=100_000)]

    def reset(self) -> None:
        self.endpoint.journal.clear()
        self.endpoint.faults.clear()
        self.endpoint.use_datafiles(Datafiles())

    def use_datafile(self, text: bytes) -> None:
        self.endpoint.use_datafiles(Datafiles((Datafile.from_json(text),)))

    def send(self, request: Request) -> Response:
        url = origin(request.path) + request.path
        kwargs = {"headers": request.headers, "content": request.body}
        if self.name == "respx-sync":
            with logx_router(self.endpoint), httpx.Client() as client:
                return _response(client.request(request.method, url, **kwargs))
        if self.name == "transport":
            with httpx.Client(transport=LogxTransport(self.endpoint)) as client:
                return _response(client.request(request.method, url, **kwargs))
        if self.name == "requests":
            with logx_requests(self.endpoint):
                sent = requests.request(
                    request.method, url, headers=request.headers, data=request.body, timeout=60
                )
            return Response(sent.status_code, dict(sent.headers), sent.content)
        return asyncio.run(self._send_async(request.method, url, kwargs))

    async def _send_async(self, method: str, url: str, kwargs: dict[str, Any]) -> Response:
        if self.name == "respx-async":
            with logx_router(self.endpoint):
                async with httpx.AsyncClient() as client:
                    return _response(await client.request(method, url, **kwargs))
        transport = httpx.ASGITransport(app=create_app(self.endpoint), client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport) as client:
            return _response(await client.request(method, url, **kwargs))


class OverHttp(Target):
    """Doors on a real socket: requests and the journal go over HTTP (the admin API)."""

    def __init__(self, name: str, url: str, client: httpx.Client | None = None) -> None:
        self.name = name
        self.url = url
        self.client = client or httpx.Client(timeout=60)
        self.sender, self.proxied = self.client, ""
        """How the cases go: a proxied door sends them to the real hosts through its proxy
        (over this scheme), the admin calls straight to the server port."""

    def send(self, request: Request) -> Response:
        return _response(
            self.sender.request(
                request.method,
                (origin(request.path, self.proxied) if self.proxied else self.url) + request.path,
                headers=request.headers,
                content=request.body,
            )
        )

    def journal(self) -> list[dict[str, Any]]:
        listed = self.client.get(self.url + "/_mock/requests", params={"limit": 100_000}).json()
        return [
            self.client.get(f"{self.url}/_mock/requests/{r['id']}").json()
            for r in listed["requests"]
        ]

    def reset(self) -> None:
        for what in ("requests", "faults", "datafiles"):
            self.client.delete(f"{self.url}/_mock/{what}").raise_for_status()

    def use_datafile(self, text: bytes) -> None:
        self.client.post(
            self.url + "/_mock/datafiles",
            content=text,
            headers={"content-type": "application/json"},
        ).raise_for_status()

    def close(self) -> None:
        self.client.close()


class ThreadedTarget(OverHttp):
    def __init__(self) -> None:
        self.server = ThreadedServer(_endpoint()).start()
        super().__init__("threaded-server", self.server.url)

    def close(self) -> None:
        super().close()
        self.server.stop()


class SubprocessTarget(OverHttp):
    """`logx-mock serve` on a SQLite file, as a user runs it (`serve-postgres`: on a
    PostgreSQL database of a server started for it).

    `serve-tls` adds `--tls` (every request, the admin API's too, over HTTPS checked
    against the CA it made); `serve-proxy` adds `--proxy-port` and sends the cases to
    their real hosts through the proxy (`https://logx.optimizely.com`, datafiles to
    `cdn.optimizely.com` and `config.optimizely.com`), reading the journal on the
    server port; `serve-proxy-http` sends them as absolute-form `http://` requests.
    """

    def __init__(self, name: str = "serve-subprocess") -> None:
        self.tmp = tempfile.TemporaryDirectory()
        folder = Path(self.tmp.name)
        self.log = open(folder / "serve.log", "w+")  # noqa: SIM115
        extra = {
            "serve-subprocess": [],
            "serve-postgres": [],
            "serve-tls": ["--tls"],
            "serve-proxy": ["--proxy-port", "0"],
            "serve-proxy-http": ["--proxy-port", "0"],
        }[name]
        if extra:
            extra += ["--ca-dir", str(folder / "ca")]
        self.database: PostgresServer | None = None
        db = str(folder / "journal.db")
        if name == "serve-postgres":
            self.database = PostgresServer().start()
            db = self.database.database()
        command = [sys.executable, "-m", "mockserver", "serve", "--port", "0"]
        command += ["--trust-proxy", TRUST, "--db", db, *extra]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        # the listening line, the inspector line, then "CA: ..." and "proxy: ..." as asked
        lines = 2 + ("--ca-dir" in extra) + name.startswith("serve-proxy")
        banner = "".join(self.proc.stdout.readline() for _ in range(lines))
        match = re.search(r"(https?://\S+?)/v1/events", banner)
        if match is None:
            self.proc.kill()
            if self.database is not None:
                self.database.close()
            raise RuntimeError(f"logx-mock serve did not start: {banner!r}")
        verify: ssl.SSLContext | bool = True
        if extra:
            verify = ssl.create_default_context(cafile=str(folder / "ca" / "ca.pem"))
        super().__init__(
            name, match.group(1), httpx.Client(timeout=60, verify=verify, trust_env=False)
        )
        proxy = re.search(r"^proxy: (http://\S+)", banner, re.MULTILINE)
        if proxy is not None:
            self.sender = httpx.Client(
                timeout=60, verify=verify, proxy=proxy.group(1), trust_env=False
            )
            self.proxied = "http" if name.endswith("-http") else "https"

    def close(self) -> None:
        super().close()
        self.sender.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        self.tmp.cleanup()
        if self.database is not None:
            self.database.close()


class UrlTarget(OverHttp):
    """Any running endpoint (`--logx-url`): status-level cases only, no journal."""

    has_journal = False

    def __init__(self, url: str) -> None:
        base = url.rstrip("/")
        base = base[: -len("/v1/events")] if base.endswith("/v1/events") else base
        super().__init__(f"url:{base}", base)

    def reset(self) -> None:
        """A foreign endpoint cannot be reset."""

    def use_datafile(self, text: bytes) -> None:
        """A foreign endpoint takes no datafile; datafile checks never change a status,
        which is all a `--logx-url` run compares."""


def open_target(name: str) -> Target:
    if name == "threaded-server":
        return ThreadedTarget()
    if name.startswith("serve-"):
        return SubprocessTarget(name)
    return InProcess(name)
