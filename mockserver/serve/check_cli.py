"""`logx-mock check`: the CI verdict on a journal.

Exit 0 when no request matches `--fail-on`, 1 when one does, 2 when the journal cannot
be read. Prints a one-screen summary; `--junit FILE` writes one test case per request.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigError, JournalError
from ..export.check import (
    DEFAULT_FAIL_ON,
    FAIL_ON_CHOICES,
    CheckResult,
    failure_of,
    parse_fail_on,
)
from ..export.junit import JUnitWriter
from ..export.ndjson import ExportLineError
from .remote import RemoteError, add_source_options, journal_records, source_name

__all__ = ["add_check_command", "render_summary", "run_check"]


def add_check_command(commands: Any) -> None:
    """Add `check` to the command line's subcommands."""
    check = commands.add_parser(
        "check", help="the CI verdict: exit 1 when a request would be dropped or refused"
    )
    add_source_options(check, "check")
    check.add_argument(
        "--fail-on",
        metavar="LIST",
        help=f"fail on these (comma-separated: {', '.join(FAIL_ON_CHOICES)}; default "
        f"{','.join(DEFAULT_FAIL_ON)})",
    )
    check.add_argument("--junit", metavar="FILE", help="write a JUnit XML report to FILE")
    check.add_argument(
        "--since", type=int, default=0, metavar="ID", help="only requests with an id above ID"
    )


def run_check(args: argparse.Namespace) -> int:
    """Check the journal; 0 pass, 1 fail, 2 when it cannot be read."""
    try:
        fail_on = parse_fail_on(args.fail_on) if args.fail_on is not None else DEFAULT_FAIL_ON
        if args.since < 0:
            raise ConfigError(f"--since must be 0 or more, got {args.since}")
    except ConfigError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    result = CheckResult(fail_on)
    junit = JUnitWriter(args.junit) if args.junit else None
    try:
        with journal_records(args, after=args.since) as records:
            for record in records:
                failure = failure_of(record, fail_on)
                result.add(record, failure)
                if junit is not None:
                    junit.add(record, failure)
        if junit is not None:
            junit.write()
    except (RemoteError, JournalError, ExportLineError, OSError) as exc:
        print(f"logx-mock: cannot check the journal: {exc}", file=sys.stderr)
        return 2
    finally:
        if junit is not None:
            junit.close()
    print(render_summary(result, source_name(args), args.junit))
    return 0 if result.ok else 1


def render_summary(result: CheckResult, where: str, junit: str | None = None) -> str:
    """The check in one screen: counts by verdict, then the first failures."""
    span = f" (ids {result.first_id} to {result.last_id})" if result.total else ""
    lines = [f"logx-mock check: {result.total:,} request(s){span} in {where}"]
    for verdict, count in sorted(result.verdicts.items(), key=lambda item: -item[1]):
        mark = "  FAIL" if verdict in result.fail_on else ""
        lines.append(f"  {verdict:<10} {count:>8,}{mark}")
    if result.with_warnings:
        mark = "  FAIL" if "warnings" in result.fail_on else ""
        lines.append(f"  {'warnings':<10} {result.with_warnings:>8,}{mark}  (requests with any)")
    failing = ", ".join(result.fail_on)
    if result.ok:
        lines.append(f"PASSED: no request is {failing}")
    else:
        lines.append(f"FAILED: {result.failed:,} of {result.total:,} request(s) are {failing}")
        for name, failure in result.shown:
            lines.append(f"  {name}")
            lines.append(f"    {failure.message}")
        left = result.failed - len(result.shown)
        if left:
            where_all = f"; every one is in {junit}" if junit else "; --junit FILE lists all"
            lines.append(f"  ... and {left:,} more{where_all}")
    return "\n".join(lines)
