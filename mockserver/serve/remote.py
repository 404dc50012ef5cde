"""What the journal commands (`events`, `results`, `export`, `import`, `check`) share:
where the journal is (`--url` of a running server, or `--db PATH|URL`), the event filter
options, the admin client, and the export stream read from a server.

Each command reads the journal the same way whichever way it is reached: `--db` opens
it (`journal.opening.open_journal`), `--url` streams `GET /_mock/export`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ..export.ndjson import ExportLineError, count_export, read_export
from ..journal.filters import EVENT_FILTERS, FILTER_CHOICES, FILTER_HELP
from ..journal.opening import is_postgres_url, open_journal, shown_url
from ..model import RequestRecord
from ..web.guard import ADMIN_PREFIX
from .admin_token import TOKEN_ENV

__all__ = [
    "DEFAULT_URL",
    "RemoteError",
    "add_filter_options",
    "add_source_options",
    "admin_client",
    "admin_get",
    "checked_export",
    "chosen_filters",
    "export_stream",
    "journal_records",
    "post_json",
    "source_name",
]

DEFAULT_URL = "http://127.0.0.1:8080"


class RemoteError(Exception):
    """The server could not be asked, or answered with an error; the message says which."""


def add_source_options(parser: argparse.ArgumentParser, verb: str) -> None:
    """`--url URL | --db PATH|URL`, and `--token`."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--url",
        help=f"{verb} the journal of the logx-mock server at URL (default {DEFAULT_URL})",
    )
    where.add_argument(
        "--db",
        metavar="PATH|URL",
        help=f"{verb} the journal directly: a SQLite file or a postgresql:// URL",
    )
    parser.add_argument(
        "--token", metavar="TOKEN", help=f"the server's admin token (default ${TOKEN_ENV})"
    )


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """One option per event filter (`--flag-key`, ...), each described, an enum filter
    refusing a value it cannot take; `chosen_filters` reads them back."""
    for name in EVENT_FILTERS:
        choices = FILTER_CHOICES.get(name)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar="VALUE",
            choices=choices,
            help=FILTER_HELP[name] + (f" (one of {', '.join(choices)})" if choices else ""),
        )


def chosen_filters(args: argparse.Namespace) -> dict[str, str]:
    """The filters given on the command line (`add_filter_options`)."""
    return {name: getattr(args, name) for name in EVENT_FILTERS if getattr(args, name)}


def admin_get(
    client: httpx.Client, base: str, path: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """The admin API's JSON answer, or None after saying on stderr what went wrong."""
    try:
        response = client.get(f"{base}{path}", params=params)
    except httpx.HTTPError as exc:
        print(
            f"logx-mock: cannot reach {base} ({exc}); is `logx-mock serve` running?",
            file=sys.stderr,
        )
        return None
    if response.status_code != 200:
        print(
            f"logx-mock: {base} answered {response.status_code}: {response.text}", file=sys.stderr
        )
        return None
    body: dict[str, Any] = response.json()
    return body


def admin_client(args: argparse.Namespace) -> httpx.Client:
    """A client for the admin API of `--url`, with the token when there is one."""
    token = args.token or os.environ.get(TOKEN_ENV)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    timeout = httpx.Timeout(30.0, read=600.0)  # a filtered export may scan a while
    return httpx.Client(base_url=_base(args), headers=headers, timeout=timeout)


def _base(args: argparse.Namespace) -> str:
    return str(args.url or DEFAULT_URL).rstrip("/")


def _refused(response: httpx.Response) -> RemoteError:
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    return RemoteError(f"{response.url} answered {response.status_code}: {detail}")


def export_stream(client: httpx.Client, params: dict[str, Any]) -> Iterator[bytes]:
    """The bytes of `GET /_mock/export` as they arrive; RemoteError when the server cannot
    be reached, refuses, or the stream is cut off."""
    try:
        with client.stream("GET", f"{ADMIN_PREFIX}/export", params=params) as response:
            if response.status_code != 200:
                response.read()
                raise _refused(response)
            yield from response.iter_bytes()
    except httpx.HTTPError as exc:
        raise RemoteError(_unreachable(client, exc)) from exc


def post_json(client: httpx.Client, path: str, body: bytes) -> dict[str, Any]:
    """POST a JSON body to an admin path; its JSON answer, or RemoteError."""
    try:
        response = client.post(
            f"{ADMIN_PREFIX}{path}", content=body, headers={"content-type": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise RemoteError(_unreachable(client, exc)) from exc
    if response.status_code != 200:
        raise _refused(response)
    answer: dict[str, Any] = response.json()
    return answer


def _unreachable(client: httpx.Client, exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.RemoteProtocolError):
        return f"cannot reach {client.base_url} ({exc}); is `logx-mock serve` running there?"
    return f"the answer of {client.base_url} was cut off ({exc}); nothing complete was read"


def source_name(args: argparse.Namespace) -> str:
    """Where the journal is, as messages name it."""
    if args.db and is_postgres_url(args.db):
        return shown_url(args.db)  # hides a password
    return str(args.db) if args.db else _base(args)


@contextlib.contextmanager
def journal_records(
    args: argparse.Namespace, *, after: int = 0
) -> Iterator[Iterator[RequestRecord]]:
    """The requests with an id above `after`, oldest first, from `--db` (read in chunks)
    or `--url` (its NDJSON export, streamed): the same records either way."""
    if args.db:
        journal = open_journal(args.db, existing=True, shared=True)
        try:
            yield journal.scan(after=after, until=journal.last_id)
        finally:
            journal.close()
        return
    with admin_client(args) as client:
        yield read_export(_lines(export_stream(client, {"format": "ndjson", "after": after})))


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream (a long line is joined once, not copied per chunk)."""
    pending: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            pending.append(chunk[start:end])
            yield b"".join(pending)
            pending, start = [], end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


def checked_export(path: Path, consequence: str) -> int | None:
    """How many requests the export at `path` holds, every line checked; None after
    saying on stderr what is wrong (and `consequence`)."""
    try:
        with path.open("rb") as lines:
            return count_export(lines)
    except ExportLineError as exc:
        print(f"logx-mock: {path}: {exc}; {consequence}", file=sys.stderr)
    except OSError as exc:
        print(f"logx-mock: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    return None
