"""The `logx-mock` command: `serve`, `validate`, `events`, `results`, `export`, `import`,
`replay` and `check`.

`main(argv)` returns an exit code and changes no global state beyond the
logging handler `serve` installs for its own run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..contract.crosscheck import crosscheck
from ..contract.datafile import DatafileError, Datafiles
from ..contract.decoding import DecodeError, decode_body
from ..contract.validation import validate
from ..violations import Report
from .ca import (
    CAError,
    CertificateAuthority,
    trust_instructions,
)
from .check_cli import add_check_command, run_check
from .events_cli import add_events_command, run_events
from .replay_cli import add_replay_command, run_replay
from .results_cli import add_results_command, run_results
from .serve_cli import add_ca_dir_option, add_serve_command, ca_dir, run_serve
from .transfer_cli import add_transfer_commands, run_export, run_import

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logx-mock",
        description="A local emulator of Optimizely's Log Endpoint (POST /v1/events).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_serve_command(commands)

    ca = commands.add_parser(
        "ca", help="make (once) the local CA for --tls and --proxy-port; show how to trust it"
    )
    add_ca_dir_option(ca)

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

    add_events_command(commands)
    add_results_command(commands)
    add_transfer_commands(commands)
    add_replay_command(commands)
    add_check_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    runner = {
        "serve": run_serve,
        "validate": _validate,
        "events": run_events,
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


# ca ------------------------------------------------------------------------


def _ca(args: argparse.Namespace) -> int:
    try:
        ca, made = CertificateAuthority.ensure(ca_dir(args.ca_dir))
    except CAError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    print(trust_instructions(ca, made))
    return 0


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
