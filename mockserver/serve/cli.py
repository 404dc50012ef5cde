"""The `logx-mock` command: `serve`, `validate`, `events`, `results`, `export`, `import`,
`replay` and `check`.

`main(argv)` returns an exit code and changes no global state beyond the
logging handler `serve` installs for its own run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx

from ..anonymize import TrustedProxies
from ..cdn import datafile_path
from ..contract.crosscheck import crosscheck
from ..contract.datafile import DatafileError, Datafiles
from ..contract.decoding import DecodeError, decode_body
from ..contract.validation import validate
from ..endpoint import EVENTS_PATH, Endpoint, EndpointConfig
from ..errors import ConfigError, JournalCause, JournalError
from ..faults import FaultError, FaultRule, parse_spec
from ..journal.base import EVENT_FILTERS, Journal
from ..journal.memory import MemoryJournal
from ..violations import Report
from ..web.guard import ADMIN_PREFIX, GuardConfig, is_loopback
from ..web.protocol import ServerLimits
from .admin_token import TOKEN_ENV, admin_token
from .ca import (
    HOME_ENV,
    CAError,
    CertificateAuthority,
    ServerCertificate,
    default_ca_dir,
    trust_instructions,
)
from .check_cli import add_check_command, run_check
from .logsink import BackgroundHandler
from .replay_cli import add_replay_command, run_replay
from .results_cli import add_results_command, admin_get, run_results
from .transfer_cli import add_transfer_commands, run_export, run_import

__all__ = ["build_parser", "main"]

DEFAULT_DB = "logx-mock.db"
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
}
"""The flag that sets each library setting a `ConfigError` can name."""
_JOURNAL_FIXES: dict[JournalCause, str] = {
    "open": "pass --db with a writable path, or --memory",
    "folder": "create it, or pass --db with a path in an existing folder",
    "damaged": "move it away (`sqlite3 FILE .recover` may save what is in it) or pass "
    "--db NEW_PATH",
    "version": "move the file away or pass --db NEW_PATH",
}


def _in_flags(exc: Exception) -> str:
    """A library error in the command line's terms: the flag to change, not the setting."""
    if isinstance(exc, ConfigError) and exc.setting in _FLAGS:
        return f"{_FLAGS[exc.setting]} {exc.problem}"
    if isinstance(exc, JournalError) and exc.cause in _JOURNAL_FIXES:
        return f"{exc.message}; {_JOURNAL_FIXES[exc.cause]}"
    return str(exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logx-mock",
        description="A local emulator of Optimizely's Log Endpoint (POST /v1/events).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the endpoint and its admin API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 for any)")
    store = serve.add_mutually_exclusive_group()
    store.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"SQLite journal file (default ./{DEFAULT_DB})",
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
    _ca_dir_option(serve)

    ca = commands.add_parser(
        "ca", help="make (once) the local CA for --tls and --proxy-port; show how to trust it"
    )
    _ca_dir_option(ca)

    check = commands.add_parser("validate", help="check payload files offline")
    check.add_argument("files", nargs="+", metavar="FILE", help="payload files, or - for stdin")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--datafile",
        action="append",
        default=[],
        metavar="FILE",
        help="also check the ids against this Optimizely datafile (repeatable)",
    )

    events = commands.add_parser("events", help="list the events of a running server")
    events.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    for name in EVENT_FILTERS:
        events.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument(
        "--token", metavar="TOKEN", help=f"the server's admin token (default ${TOKEN_ENV})"
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    add_results_command(commands)
    add_transfer_commands(commands)
    add_replay_command(commands)
    add_check_command(commands)
    return parser


def _ca_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-dir",
        metavar="DIR",
        help=f"the CA's folder (default ${HOME_ENV}, else ~/.logx-mock)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    runner = {
        "serve": _serve,
        "validate": _validate,
        "events": _events,
        "results": run_results,
        "export": run_export,
        "import": run_import,
        "replay": run_replay,
        "check": run_check,
        "ca": _ca,
    }[args.command]
    try:
        return runner(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `logx-mock events | head`: the reader is gone, stop quietly
        return _stdout_gone()


def _stdout_gone() -> int:
    """Point stdout at /dev/null (so the exit's flush cannot fail again) and return what a
    shell reports for a Unix tool ended by SIGPIPE."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + signal.SIGPIPE


# serve ---------------------------------------------------------------------


def _retention(args: argparse.Namespace) -> int | None:
    """The journal's cap: `--max-requests`, or the default; None keeps everything."""
    if args.max_requests is None:
        return RETENTION["memory" if args.memory else "sqlite"]
    return args.max_requests or None


def _open_journal(args: argparse.Namespace) -> Journal:
    if args.memory:
        return MemoryJournal(max_requests=_retention(args))
    from ..journal.sqlite import SqliteJournal

    return SqliteJournal(args.db, max_requests=_retention(args))


def _serve(args: argparse.Namespace) -> int:
    if args.max_requests is not None and args.max_requests < 0:
        print("logx-mock: --max-requests must be 0 (keep all) or more", file=sys.stderr)
        return 2
    try:
        token, notes = admin_token(args.admin_token, args.admin_token_file, os.environ)
    except ValueError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"logx-mock: note: {note}", file=sys.stderr)
    if args.workers < 1 or (args.workers > 1 and args.memory):
        print(
            "logx-mock: --workers N needs N >= 1, and a SQLite journal (--db) to share when N > 1",
            file=sys.stderr,
        )
        return 2
    if not is_loopback(args.host) and not (token or args.insecure_admin):
        print(
            f"logx-mock: --host {args.host} exposes the admin API ({ADMIN_PREFIX}) beyond this "
            "machine; pass --admin-token TOKEN, or --insecure-admin if that is really what you "
            "want",
            file=sys.stderr,
        )
        return 2
    try:
        trusted = TrustedProxies.parse(args.trust_proxy)
        rules = _fault_rules(args)
        guard = GuardConfig(
            token=token, allowed_hosts=frozenset(h.lower() for h in args.allow_host)
        )
        datafiles = Datafiles.load(args.datafile)
        limits = _limits(args)
        config = EndpointConfig(
            trusted_proxies=trusted, body_timeout=args.body_timeout, datafiles=datafiles
        )
        secure = _server_certificate(args)
    except (ValueError, OSError, CAError) as exc:
        print(f"logx-mock: {_in_flags(exc)}", file=sys.stderr)
        return 2
    socks: list[socket.socket] = []
    try:
        # The sockets before the journal: a port that is taken must leave no file behind.
        socks.append(_bind(args.host, args.port, "--port"))
        if args.proxy_port is not None:
            socks.append(_bind(args.host, args.proxy_port, "--proxy-port"))
        journal = _open_journal(args)
    except (ValueError, OSError, JournalError) as exc:
        for sock in socks:
            sock.close()
        if secure is not None:
            secure.close()
        print(f"logx-mock: {_in_flags(exc)}", file=sys.stderr)
        return 2
    endpoint = Endpoint(journal, config=config)
    # A journal file holds its plan and datafiles, for every worker: a server starts with
    # those its command line gives (none without the flags), not the last run's.
    endpoint.faults.replace(rules)
    endpoint.use_datafiles(datafiles)
    try:
        return _run(args, endpoint, rules, guard, socks, secure, limits)
    finally:
        if secure is not None:
            secure.close()


def _bind(host: str, port: int, flag: str) -> socket.socket:
    from .server import bind_socket

    try:
        return bind_socket(host, port)
    except OSError as exc:
        reason = exc.__cause__.strerror if isinstance(exc.__cause__, OSError) else exc
        raise OSError(
            f"cannot listen on {host}:{port} ({reason}); pick another {flag}, or {flag} 0 for any"
        ) from exc


def _limits(args: argparse.Namespace) -> ServerLimits:
    """`--head-timeout`, `--idle-timeout`, `--max-connections` (ValueError names a bad one)."""
    bounds: dict[str, Any] = {"head_timeout": args.head_timeout, "idle_timeout": args.idle_timeout}
    if args.max_connections is not None:
        bounds["max_connections"] = args.max_connections
    return ServerLimits(**bounds)


def _server_certificate(args: argparse.Namespace) -> ServerCertificate | None:
    """The CA and this run's leaf, when `--tls` or `--proxy-port` needs them."""
    if not args.tls and args.proxy_port is None:
        return None
    if args.proxy_port is not None and args.workers > 1:
        raise CAError("--proxy-port runs in one process: leave out --workers")
    return ServerCertificate.open(_ca_dir(args))


def _ca_dir(args: argparse.Namespace) -> Path:
    return Path(args.ca_dir).expanduser() if args.ca_dir else default_ca_dir()


def _run(
    args: argparse.Namespace,
    endpoint: Endpoint,
    rules: list[FaultRule],
    guard: GuardConfig,
    socks: list[socket.socket],
    secure: ServerCertificate | None,
    limits: ServerLimits,
) -> int:
    """Print the banner and serve until Ctrl-C."""
    from ..web.app import create_app
    from .server import _ReadyServer, uvicorn_config

    journal, datafiles = endpoint.journal, endpoint.config.datafiles
    if args.datafile and args.workers == 1:
        from .watch import watch_datafiles

        watch_datafiles(endpoint, args.datafile)
    log_to_stderr()
    base = _url("https" if args.tls else "http", socks[0])
    where = "memory" if args.memory else str(Path(args.db).resolve())
    print(f"logx-mock listening on {base}{EVENTS_PATH} (journal: {where})", flush=True)
    print(
        f"inspector: {base}{ADMIN_PREFIX}/   admin API: {base}{ADMIN_PREFIX}/requests   "
        "(Ctrl-C to stop)",
        flush=True,
    )
    if secure is not None:
        made = "made now; " if secure.made else ""
        print(f"CA: {secure.ca.cert_path} ({made}`logx-mock ca` shows how to trust it)", flush=True)
    if args.proxy_port is not None:
        proxy = _url("http", socks[1])
        print(f"proxy: {proxy} (HTTPS_PROXY={proxy}; answers only Optimizely's hosts)", flush=True)
    for datafile in datafiles.files:
        print(f"datafile: {datafile.describe()}", flush=True)
        if datafile.sdk_key:
            url = f"{base}{datafile_path(datafile.sdk_key)}"
            print(f"  served at {url}", flush=True)
    kept = (
        "all requests" if journal.max_requests is None else f"the newest {journal.max_requests:,}"
    )
    print(f"journal keeps {kept} (--max-requests N; 0 keeps all)", flush=True)
    tls = {}
    if args.tls and secure is not None:
        tls = {"ssl_certfile": str(secure.leaf.certfile), "ssl_keyfile": str(secure.leaf.keyfile)}
    if args.workers > 1:
        # The parent's journal made the file and its schema, and holds the file's lock while
        # the workers (each opening its own, shared) run: no other server can take it.
        settings = {
            "db": str(Path(args.db).resolve()),
            "max_requests": _retention(args),
            "trust_proxy": args.trust_proxy,
            "body_timeout": args.body_timeout,
            "datafiles": [str(Path(p).resolve()) for p in args.datafile],
            "admin_token_sha256": guard.token_sha256,
            "allowed_hosts": sorted(guard.allowed_hosts),
            "tls": tls,
        }
        from .workers import run_workers

        with contextlib.suppress(KeyboardInterrupt):
            run_workers(socks[0], args.workers, settings, limits)
        journal.close()
    else:
        app = create_app(endpoint, close_journal=True, guard=guard)
        side = []
        if secure is not None and args.proxy_port is not None:
            from .proxy import proxy_listener

            side.append(proxy_listener(socks[1], app, secure.leaf, limits=limits))
        server = _ReadyServer(uvicorn_config(app, limits=limits, **tls), side=side)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutdown
            server.run(sockets=[socks[0]])
    for handler in logging.getLogger("logx_mock").handlers:
        handler.flush()  # the request lines first, then the last word
    print("logx-mock stopped; every acknowledged request is in the journal", file=sys.stderr)
    return 0


def _url(scheme: str, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _ca(args: argparse.Namespace) -> int:
    try:
        ca, made = CertificateAuthority.ensure(_ca_dir(args))
    except CAError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    print(trust_instructions(ca, made))
    return 0


def _fault_rules(args: argparse.Namespace) -> list[FaultRule]:
    """`--faults-file` rules first, then each `--fault`, in order."""
    rules: list[FaultRule] = []
    if args.faults_file:
        data = json.loads(Path(args.faults_file).read_text())
        items = data.get("rules") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise FaultError(
                f'{args.faults_file}: write a JSON list of rules, or {{"rules": [...]}}'
            )
        rules += [parse_spec(i) if isinstance(i, str) else FaultRule.from_dict(i) for i in items]
    rules += [parse_spec(spec) for spec in args.fault]
    return rules


def log_to_stderr() -> None:
    """One readable line per request on stderr (the worker processes call it too).

    The serve process logs only our lines, which name no thread, process or source line:
    so each record skips collecting them, as the logging HOWTO's "Optimization" section
    describes (a frame walk per request was most of the log's cost on the event loop).
    """
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    logger = logging.getLogger("logx_mock")
    if not any(getattr(h, "_logx_cli", False) for h in logger.handlers):
        formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        handler = BackgroundHandler(sys.stderr, formatter)  # off the event loop
        handler._logx_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


# validate ------------------------------------------------------------------


def _read(name: str) -> bytes:
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def _validate(args: argparse.Namespace) -> int:
    try:
        datafiles = Datafiles.load(args.datafile)
    except DatafileError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    worst = 0
    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            payload = decode_body(_read(name), None).payload
        except OSError as exc:
            results.append({"file": name, "unreadable": exc.strerror or str(exc)})
            worst = 2
            continue
        except DecodeError as exc:
            results.append({"file": name, "unreadable": exc.message})
            worst = 2
            continue
        report = validate(payload)
        keys = crosscheck(payload, datafiles, report)
        results.append({"file": name, **_report_dict(report)})
        if datafiles:
            results[-1]["keys"] = keys
        if report.errors:
            worst = max(worst, 1)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        for datafile in datafiles.files:
            print(f"checked against {datafile.describe()}")
        for result in results:
            _print_result(result, sys.stdout)
    return worst


def _report_dict(report: Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "errors": [v.to_dict() for v in report.errors],
        "warnings": [v.to_dict() for v in report.warnings],
        "unknown_fields": [v.to_dict() for v in report.notes],
    }


def _print_result(result: dict[str, Any], out: TextIO) -> None:
    name = result["file"]
    if "unreadable" in result:
        print(f"{name}: cannot be read: {result['unreadable']}", file=out)
        return
    counts = f"{len(result['errors'])} error(s), {len(result['warnings'])} warning(s)"
    print(f"{name}: {'ok' if result['ok'] else 'INVALID'}, {counts}", file=out)
    for label, key in (("error", "errors"), ("warning", "warnings"), ("note", "unknown_fields")):
        for item in result[key]:
            print(f"  {label:<7} {item['path']}: {item['message']} [{item['rule']}]", file=out)


# events --------------------------------------------------------------------

_COLUMNS = ("request_id", "verdict", "kind", "visitor_id", "key", "entity_id", "uuid")


def _events(args: argparse.Namespace) -> int:
    filters = {name: getattr(args, name) for name in EVENT_FILTERS if getattr(args, name)}
    base = args.url.rstrip("/")
    after, first = 0, True
    if not args.json:
        print("  ".join(f"{c:<12}" for c in _COLUMNS), flush=True)
    token = args.token or os.environ.get(TOKEN_ENV)
    auth = {"authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=70.0, headers=auth) as client:
        while first or args.follow:
            params: dict[str, Any] = {**filters, "after": after, "limit": args.limit}
            if not first:
                params["wait"] = 30
            body = admin_get(client, base, f"{ADMIN_PREFIX}/events", params)
            if body is None:
                return 2
            for event in body["events"]:
                print(json.dumps(event) if args.json else _row(event), flush=True)
            after = body["events"][-1]["request_id"] if body["events"] else body["last_id"]
            first = False
    return 0


def _row(event: dict[str, Any]) -> str:
    cells = []
    for column in _COLUMNS:
        value = event.get(column)
        if column == "key" and value in (None, ""):
            value = event.get("entity_key")  # a conversion sent without its key: the datafile's
        text = "" if value is None else str(value)
        cells.append(f"{text[:12]:<12}" if column != "uuid" else text)
    if event.get("duplicate"):
        cells.append("(duplicate)")
    return "  ".join(cells)
