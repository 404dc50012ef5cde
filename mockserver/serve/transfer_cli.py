"""`logx-mock export` and `logx-mock import`: the journal to a file and back.

`export` writes NDJSON (one request per line, everything the journal holds) or HAR 1.2,
from a running server (`--url`, streaming `GET /_mock/export`) or a journal (`--db`), in
constant memory. `import` reads an NDJSON export twice: first every line is checked (a
file that is not an export is refused with the line and what is wrong, and nothing is
imported), then the requests are journaled (new ids, original times, `source_id`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, JournalError
from ..export.ndjson import as_imported, read_export
from ..export.stream import FORMATS, export_chunks
from ..journal.opening import open_journal
from ..model import RequestRecord
from .remote import (
    RemoteError,
    add_filter_options,
    add_source_options,
    admin_client,
    checked_export,
    chosen_filters,
    export_stream,
    post_json,
)

__all__ = ["add_transfer_commands", "run_export", "run_import"]

_POST_BYTES = 1_000_000
"""`import --url` sends about this much per request (the admin API's usual body bound)."""
_POST_REQUESTS = 5_000
_WINDOW = 1_000
"""`import --db` waits for each thousand commits before queueing more: bounded memory."""


def add_transfer_commands(commands: Any) -> None:
    """Add `export` and `import` to the command line's subcommands."""
    export = commands.add_parser(
        "export", help="write the journal as NDJSON or HAR (streamed, any size)"
    )
    add_source_options(export, "export")
    export.add_argument(
        "--format", choices=FORMATS, default="ndjson", help="ndjson (default) or har"
    )
    export.add_argument("--after", type=int, default=0, metavar="ID", help="only ids above ID")
    add_filter_options(export)
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default stdout)")

    load = commands.add_parser(
        "import", help="load an NDJSON export into a journal (new ids, same times)"
    )
    load.add_argument("file", metavar="FILE", help="an NDJSON file `logx-mock export` wrote")
    add_source_options(load, "import into")


# export --------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    """Write the export; 2 when the journal cannot be read (nothing is left at --output)."""
    if args.after < 0:
        print("logx-mock: --after must be 0 or more", file=sys.stderr)
        return 2
    filters = chosen_filters(args)
    try:
        with _output(args.output) as out:
            if args.db:
                _export_db(args, filters, out)
            else:
                params = {"format": args.format, "after": args.after, **filters}
                with admin_client(args) as client:
                    for chunk in export_stream(client, params):
                        out.write(chunk)
    except (RemoteError, JournalError, ConfigError, OSError) as exc:
        print(f"logx-mock: {exc}", file=sys.stderr)
        return 2
    return 0


def _export_db(args: argparse.Namespace, filters: dict[str, str], out: IO[bytes]) -> None:
    journal = open_journal(args.db, existing=True, shared=True)
    try:
        for chunk in export_chunks(journal, args.format, after=args.after, filters=filters):
            out.write(chunk)
    finally:
        journal.close()


@contextlib.contextmanager
def _output(name: str | None) -> Iterator[IO[bytes]]:
    """stdout, or FILE written beside it as FILE.part and renamed once complete: an
    export that fails leaves no file that looks whole."""
    if name is None or name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    final = Path(name)
    partial = final.with_name(final.name + ".part")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


# import --------------------------------------------------------------------


def run_import(args: argparse.Namespace) -> int:
    """Check every line, then journal them; 2 when the file or the journal fails."""
    path = Path(args.file)
    count = checked_export(path, "nothing was imported")
    if count is None:
        return 2
    try:
        with path.open("rb") as lines:
            first, last = _import_db(args.db, lines) if args.db else _import_url(args, lines)
    except (RemoteError, JournalError, OSError) as exc:
        hint = " (a running server's journal: import with --url)" if args.db else ""
        print(f"logx-mock: {exc}{hint}", file=sys.stderr)
        return 2
    where = args.db or args.url or "the server"
    ids = f" (ids {first} to {last})" if count else ""
    print(f"imported {count:,} request(s) from {path} into {where}{ids}", file=sys.stderr)
    return 0


def _import_db(db: str, lines: Iterable[bytes]) -> tuple[int | None, int | None]:
    journal = open_journal(db)
    first: int | None = None
    last: int | None = None
    pending: list[Future[RequestRecord]] = []
    try:
        for record in read_export(lines):
            pending.append(journal.append(as_imported(record)))
            if len(pending) >= _WINDOW:
                first, last = _settled(pending, first)
        first, last = _settled(pending, first) if pending else (first, last)
    finally:
        journal.close()
    return first, last


def _settled(pending: list[Future[RequestRecord]], first: int | None) -> tuple[int | None, int]:
    ids = [future.result().id for future in pending]
    pending.clear()
    return (ids[0] if first is None else first), ids[-1]


def _import_url(args: argparse.Namespace, lines: Iterable[bytes]) -> tuple[int | None, int | None]:
    first: int | None = None
    last: int | None = None
    with admin_client(args) as client:
        for batch in _batches(lines):
            answer = post_json(client, "/import", b'{"requests":[' + b",".join(batch) + b"]}")
            if answer["imported"]:
                first = answer["first_id"] if first is None else first
                last = answer["last_id"]
    return first, last


def _batches(lines: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The file's lines (already checked) in groups of about `_POST_BYTES`."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if batch and (size + len(line) > _POST_BYTES or len(batch) >= _POST_REQUESTS):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield batch
