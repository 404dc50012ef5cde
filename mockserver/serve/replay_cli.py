"""`logx-mock replay FILE --to URL`: the command around `replay.send_all`, with a progress
bar on a terminal (`rich`) and a summary of the statuses.

Exit 0 when every answer was 2xx, 1 when one was not (or none came), 2 when the file is
not an export or an option is wrong (then nothing is sent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ConfigError
from ..export.ndjson import read_export
from .remote import checked_export
from .replay import Tally, parse_rate, prepared, send_all, target_base

__all__ = ["add_replay_command", "run_replay"]


def add_replay_command(commands: Any) -> None:
    """Add `replay` to the command line's subcommands."""
    replay = commands.add_parser(
        "replay", help="send the requests of an NDJSON export again, to another endpoint"
    )
    replay.add_argument("file", metavar="FILE", help="an NDJSON file `logx-mock export` wrote")
    replay.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the server to send to (e.g. http://127.0.0.1:9090); each request keeps its path",
    )
    replay.add_argument("--rate", metavar="N/s", help="at most N requests a second")
    replay.add_argument(
        "--strict", action="store_true", help="send each with X-Optimizely-Strict: true"
    )
    replay.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="N requests at once (default 1)"
    )


def run_replay(args: argparse.Namespace) -> int:
    """Replay the file; 0 when every answer was 2xx, 1 otherwise, 2 before sending."""
    try:
        base = target_base(args.to)
        rate = parse_rate(args.rate) if args.rate is not None else None
        if args.concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more, got {args.concurrency}")
    except ConfigError as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    path = Path(args.file)
    total = checked_export(path, "nothing was sent")
    if total is None:
        return 2
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]replay[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with path.open("rb") as lines, progress:
        task = progress.add_task(base, total=total)
        items = (prepared(record, base, strict=args.strict) for record in read_export(lines))
        tally = asyncio.run(
            send_all(
                items,
                concurrency=args.concurrency,
                rate=rate,
                on_done=lambda: progress.advance(task),
            )
        )
    print(render_tally(tally, base))
    return 0 if tally.failed == 0 else 1


def render_tally(tally: Tally, base: str) -> str:
    """The summary: how many were sent, each status's count, and the verdict."""
    skipped = f" ({tally.skipped:,} skipped)" if tally.skipped else ""
    lines = [f"replayed {tally.sent:,} request(s) to {base}{skipped}", *tally.lines()]
    if tally.failed:
        lines.append(f"FAILED: {tally.failed:,} answer(s) were not 2xx")
    else:
        lines.append("OK: every answer was 2xx")
    return "\n".join(lines)
