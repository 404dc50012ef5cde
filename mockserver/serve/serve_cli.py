"""`logx-mock serve`: its options, the `ServeSettings` they make (once), and the run.

Library errors name settings in the library's terms; `in_flags` says them in this
command's (`--admin-token`, `--db`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import sys
from pathlib import Path

from ..cdn import datafile_path
from ..endpoint import EVENTS_PATH, Endpoint
from ..errors import ConfigError, JournalCause, JournalError
from ..faults import FaultRule, parse_spec, rules_from
from ..journal.opening import is_postgres_url
from ..web.guard import ADMIN_PREFIX, GuardConfig, is_loopback
from ..web.protocol import ServerLimits
from .admin_token import TOKEN_ENV, admin_token
from .ca import HOME_ENV, CAError, ServerCertificate, default_ca_dir
from .logsink import log_to_stderr
from .settings import ServeSettings

__all__ = ["add_ca_dir_option", "add_serve_command", "ca_dir", "in_flags", "run_serve"]


DEFAULT_DB = "logx-mock.db"
DB_ENV = "LOGX_MOCK_DB"
"""The environment variable that sets `--db` when the flag is not given."""
RETENTION = {"sqlite": 100_000, "memory": 10_000}
"""How many requests `serve` keeps unless told (`--max-requests`; 0 keeps all): enough for a
long load test (tests/test_load.py journals 16,000) and days of an app's traffic, while the
file (about 3 KB per SDK request: ~300 MB) or the memory (about 10 KB per request in Python
objects: ~100 MB) stays bounded when a server is left running."""

_FLAGS = {
    "trusted proxy": "--trust-proxy",
    "admin token": "--admin-token",
    "body_timeout": "--body-timeout",
    "max_requests": "--max-requests",
    "head_timeout": "--head-timeout",
    "idle_timeout": "--idle-timeout",
    "max_connections": "--max-connections",
}
"""The flag that sets each library setting a `ConfigError` can name."""
_JOURNAL_FIXES: dict[JournalCause, str] = {
    "open": "pass --db with a writable path, or --memory",
    "folder": "create it, or pass --db with a path in an existing folder",
    "damaged": "move it away (`sqlite3 FILE .recover` may save what is in it) or pass "
    "--db NEW_PATH",
    "version": "move the file away or pass --db NEW_PATH",
}


def in_flags(exc: Exception) -> str:
    """A library error in the command line's terms: the flag to change, not the setting."""
    if isinstance(exc, ConfigError) and exc.setting in _FLAGS:
        return f"{_FLAGS[exc.setting]} {exc.problem}"
    if isinstance(exc, JournalError) and exc.cause in _JOURNAL_FIXES:
        return f"{exc.message}; {_JOURNAL_FIXES[exc.cause]}"
    return str(exc)


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the endpoint and its admin API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 for any)")
    store = serve.add_mutually_exclusive_group()
    store.add_argument(
        "--db",
        default=os.environ.get(DB_ENV, DEFAULT_DB),
        metavar="PATH|URL",
        help="SQLite journal file, or a PostgreSQL URL postgresql://user:pass@host:port/db "
        f"shared by every instance on it (default ${DB_ENV}, else ./{DEFAULT_DB})",
    )
    store.add_argument("--memory", action="store_true", help="keep the journal in memory only")
    serve.add_argument(
        "--max-requests",
        type=int,
        metavar="N",
        help=f"keep the newest N requests (default {RETENTION['sqlite']:,} with --db, "
        f"{RETENTION['memory']:,} with --memory; 0 keeps all)",
    )
    serve.add_argument(
        "--trust-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="believe X-Forwarded-For from peers in CIDR (repeatable)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. status=503,times=2 or delay=200ms or "
        "reset,rate=0.1,seed=42 (repeatable; the first matching rule applies)",
    )
    serve.add_argument(
        "--faults-file", metavar="FILE", help='a JSON list of fault rules (or {"rules": [...]})'
    )
    serve.add_argument(
        "--datafile",
        action="append",
        default=[],
        metavar="FILE",
        help="check every batch against this Optimizely datafile (repeatable: matched by "
        "project_id, then revision; a changed file is read again), and serve it to the SDKs "
        "at /datafiles/<its sdkKey>.json",
    )
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help=f"require this token for {ADMIN_PREFIX} (Authorization: Bearer, or open "
        f"{ADMIN_PREFIX}/?token=TOKEN); visible in `ps`: prefer --admin-token-file or {TOKEN_ENV}",
    )
    serve.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="read the admin token from FILE (chmod 600 it)",
    )
    serve.add_argument(
        "--insecure-admin",
        action="store_true",
        help="allow binding a non-loopback address without --admin-token",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name (besides IPs and localhost) the admin API answers to (repeatable)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N worker processes sharing the SQLite journal (default 1; needs --db)",
    )
    serve.add_argument(
        "--head-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a connection whose request head takes longer to arrive (default 10)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="close a kept-alive connection idle this long (default 5)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="serve at most N open connections, answer 503 past them "
        "(default: half the file-descriptor limit, at most 1024)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="answer 408 when a body takes longer than this to arrive (default 30)",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        help="speak HTTPS, with a certificate for Optimizely's hosts signed by the logx-mock CA",
    )
    serve.add_argument(
        "--proxy-port",
        type=int,
        metavar="PORT",
        help="also run a forward proxy (HTTPS_PROXY) that answers for Optimizely's hosts "
        "and refuses every other host (0 for any port)",
    )
    add_ca_dir_option(serve)


def add_ca_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-dir",
        metavar="DIR",
        help=f"the CA's folder (default ${HOME_ENV}, else ~/.logx-mock)",
    )


def ca_dir(given: str | None) -> Path:
    """The CA's folder: `--ca-dir`, else the default."""
    return Path(given).expanduser() if given else default_ca_dir()


def _refusal(args: argparse.Namespace, token: str | None) -> str | None:
    """What makes these options unusable together, before anything is opened."""
    if args.max_requests is not None and args.max_requests < 0:
        return "--max-requests must be 0 (keep all) or more"
    if args.workers < 1 or (args.workers > 1 and args.memory):
        return (
            "--workers N needs N >= 1, and a journal to share when N > 1: a SQLite file or a "
            "PostgreSQL URL (--db)"
        )
    if not is_loopback(args.host) and not (token or args.insecure_admin):
        return (
            f"--host {args.host} exposes the admin API ({ADMIN_PREFIX}) beyond this "
            "machine; pass --admin-token TOKEN, or --insecure-admin if that is really what you "
            "want"
        )
    return None


def settings_from_args(args: argparse.Namespace, token: str | None) -> ServeSettings:
    """The settings of this run; a `ConfigError` or `OSError` names what is wrong."""
    bounds: dict[str, float | int] = {
        "head_timeout": args.head_timeout,
        "idle_timeout": args.idle_timeout,
    }
    if args.max_connections is not None:
        bounds["max_connections"] = args.max_connections
    kept = RETENTION["memory" if args.memory else "sqlite"]
    return ServeSettings(
        host=args.host,
        port=args.port,
        db=None if args.memory else args.db,  # a SQLite path or a PostgreSQL URL
        max_requests=kept if args.max_requests is None else args.max_requests or None,
        trusted_proxies=tuple(args.trust_proxy),
        body_timeout=args.body_timeout,
        faults=tuple(_fault_rules(args)),
        datafiles=tuple(args.datafile),
        admin_token_sha256=GuardConfig(token=token).token_sha256,
        allowed_hosts=frozenset(h.lower() for h in args.allow_host),
        insecure_admin=args.insecure_admin,
        limits=ServerLimits(**bounds),  # type: ignore[arg-type]
        workers=args.workers,
        tls=args.tls,
        proxy_port=args.proxy_port,
        ca_dir=args.ca_dir,
    )


def _fault_rules(args: argparse.Namespace) -> list[FaultRule]:
    """`--faults-file` rules first, then each `--fault`, in order."""
    rules: list[FaultRule] = []
    if args.faults_file:
        data = json.loads(Path(args.faults_file).read_text())
        rules += rules_from(data, source=args.faults_file)
    rules += [parse_spec(spec) for spec in args.fault]
    return rules


def run_serve(args: argparse.Namespace) -> int:
    """`logx-mock serve`: check the options, build the settings once, serve until Ctrl-C."""
    try:
        token, notes = admin_token(args.admin_token, args.admin_token_file, os.environ)
    except ValueError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"logx-mock: note: {note}", file=sys.stderr)
    refusal = _refusal(args, token)
    if refusal is not None:
        print(f"logx-mock: {refusal}", file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args, token)
        config = settings.endpoint_config()
        secure = _server_certificate(settings)
    except (ValueError, OSError, CAError) as exc:
        print(f"logx-mock: {in_flags(exc)}", file=sys.stderr)
        return 2
    socks: list[socket.socket] = []
    try:
        # The sockets before the journal: a port that is taken must leave no file behind.
        socks.append(_bind(settings.host, settings.port, "--port", settings.workers > 1))
        if settings.proxy_port is not None:
            socks.append(_bind(settings.host, settings.proxy_port, "--proxy-port"))
        journal = settings.open_journal()
    except (ValueError, OSError, JournalError) as exc:
        for sock in socks:
            sock.close()
        if secure is not None:
            secure.close()
        # A PostgreSQL journal's own advice (the driver, the server, the URL) is the fix;
        # the command line's fixes are about a SQLite file.
        remote = isinstance(exc, JournalError) and is_postgres_url(settings.db or "")
        print(f"logx-mock: {exc if remote else in_flags(exc)}", file=sys.stderr)
        return 2
    endpoint = settings.build_endpoint(journal, config)
    try:
        return _run(settings, endpoint, socks, secure)
    finally:
        if secure is not None:
            secure.close()


def _bind(host: str, port: int, flag: str, reuse_port: bool = False) -> socket.socket:
    from .server import bind_socket

    try:
        return bind_socket(host, port, reuse_port=reuse_port)
    except OSError as exc:
        reason = exc.__cause__.strerror if isinstance(exc.__cause__, OSError) else exc
        raise OSError(
            f"cannot listen on {host}:{port} ({reason}); pick another {flag}, or {flag} 0 for any"
        ) from exc


def _server_certificate(settings: ServeSettings) -> ServerCertificate | None:
    """The CA and this run's leaf, when `--tls` or `--proxy-port` needs them."""
    if not settings.tls and settings.proxy_port is None:
        return None
    if settings.proxy_port is not None and settings.workers > 1:
        raise CAError("--proxy-port runs in one process: leave out --workers")
    return ServerCertificate.open(ca_dir(settings.ca_dir))


def _run(
    settings: ServeSettings,
    endpoint: Endpoint,
    socks: list[socket.socket],
    secure: ServerCertificate | None,
) -> int:
    """Print the banner and serve until Ctrl-C or SIGTERM."""
    from .server import ReadyServer, freeze_startup_heap, stopped_by_signals, uvicorn_config

    if settings.tls and secure is not None:
        leaf = secure.leaf
        files = {"ssl_certfile": str(leaf.certfile), "ssl_keyfile": str(leaf.keyfile)}
        settings = dataclasses.replace(settings, certificate=files)
    log_to_stderr()
    _banner(settings, endpoint, socks, secure)
    if settings.workers > 1:
        from ..journal.sqlite import SqliteJournal
        from .workers import run_workers

        # The parent's journal made the file and its schema, and holds the file's lock while
        # the workers (each opening its own, shared) run: no other server can take it. One
        # of the workers checkpoints it.
        if isinstance(endpoint.journal, SqliteJournal):
            endpoint.journal.leave_checkpoints()
        with stopped_by_signals():
            run_workers(socks[0], settings)
        endpoint.journal.close()
    else:
        app = settings.build_app(endpoint)
        side = []
        if secure is not None and settings.proxy_port is not None:
            from .proxy import proxy_listener

            side.append(proxy_listener(socks[1], app, secure.leaf, limits=settings.limits))
        server = ReadyServer(
            uvicorn_config(app, limits=settings.limits, **settings.certificate), side=side
        )
        freeze_startup_heap()
        with stopped_by_signals():  # uvicorn raises the signal again after its shutdown
            server.run(sockets=[socks[0]])
    for handler in logging.getLogger("logx_mock").handlers:
        handler.flush()  # the request lines first, then the last word
    print("logx-mock stopped; every acknowledged request is in the journal", file=sys.stderr)
    return 0


def _banner(
    settings: ServeSettings,
    endpoint: Endpoint,
    socks: list[socket.socket],
    secure: ServerCertificate | None,
) -> None:
    base = _url("https" if settings.tls else "http", socks[0])
    where = settings.journal_shown
    print(f"logx-mock listening on {base}{EVENTS_PATH} (journal: {where})", flush=True)
    print(
        f"inspector: {base}{ADMIN_PREFIX}/   admin API: {base}{ADMIN_PREFIX}/requests   "
        "(Ctrl-C to stop)",
        flush=True,
    )
    if secure is not None:
        made = "made now; " if secure.made else ""
        print(f"CA: {secure.ca.cert_path} ({made}`logx-mock ca` shows how to trust it)", flush=True)
    if settings.proxy_port is not None:
        proxy = _url("http", socks[1])
        print(f"proxy: {proxy} (HTTPS_PROXY={proxy}; answers only Optimizely's hosts)", flush=True)
    for datafile in endpoint.config.datafiles.files:
        print(f"datafile: {datafile.describe()}", flush=True)
        if datafile.sdk_key:
            print(f"  served at {base}{datafile_path(datafile.sdk_key)}", flush=True)
    cap = endpoint.journal.max_requests
    kept = "all requests" if cap is None else f"the newest {cap:,}"
    print(f"journal keeps {kept} (--max-requests N; 0 keeps all)", flush=True)


def _url(scheme: str, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
