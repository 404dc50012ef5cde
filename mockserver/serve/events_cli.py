"""`logx-mock events`: the journal's events of a running server, as a table or JSON lines,
and with `--follow` the new ones as they arrive (long-polls of the admin API)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import httpx

from ..journal.base import DEFAULT_LIMIT
from ..web.guard import ADMIN_PREFIX
from .admin_token import TOKEN_ENV
from .remote import add_filter_options, admin_get, chosen_filters

__all__ = ["add_events_command", "run_events", "table_row"]

_COLUMNS = ("#", "verdict", "kind", "visitor", "key", "variation", "revenue", "uuid")
_WIDTHS = (4, 8, 10, 12, 18, 12, 7, 0)
"""The narrowest each column is; a longer value widens the table, it is never cut."""


def add_events_command(commands: Any) -> None:
    """Add `events` to the command line's subcommands."""
    events = commands.add_parser(
        "events",
        help="list the events of a running server",
        description="The events of a running server, oldest first; each filter matches "
        "exactly, as the pytest handle's filters do.",
    )
    events.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    add_filter_options(events)
    events.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N events (default {DEFAULT_LIMIT}); with --follow, the newest N first",
    )
    events.add_argument(
        "--token", metavar="TOKEN", help=f"the server's admin token (default ${TOKEN_ENV})"
    )
    events.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="print the newest --limit events, then each new one as it arrives",
    )
    events.add_argument("--json", action="store_true", help="one JSON object per line")


def run_events(args: argparse.Namespace) -> int:
    """Print the events; 2 when the server cannot be asked."""
    filters = chosen_filters(args)
    base = args.url.rstrip("/")
    token = args.token or os.environ.get(TOKEN_ENV)
    auth = {"authorization": f"Bearer {token}"} if token else {}
    table = None if args.json else _Table()
    after, after_index, first = 0, None, True
    with httpx.Client(timeout=70.0, headers=auth) as client:
        while first or args.follow:
            params: dict[str, Any] = {**filters, "after": after, "limit": args.limit}
            if after_index is not None:  # the last page stopped inside a request
                params["after_index"] = after_index
            if first and args.follow:
                params["tail"] = "true"  # the newest N, then follow from there
            elif not first:
                params["wait"] = 30
            body = admin_get(client, base, f"{ADMIN_PREFIX}/events", params)
            if body is None:
                return 2
            events = body["events"]
            if table is None:
                for event in events:
                    print(json.dumps(event), flush=True)
            else:
                table.show(events)
            resumed = _resume(after, events, body["last_id"], tail=first and args.follow)
            cursor = body.get("next") or {}
            after_index = cursor.get("after_index") if cursor.get("after") == resumed else None
            after, first = resumed, False
    return 0


def _resume(after: int, events: list[dict[str, Any]], last_id: int, *, tail: bool) -> int:
    """Where the next page starts. `last_id` was read before the query: every request up
    to it was looked at, unless the page stopped at its limit (then: after its last event's
    request, which a tail page never does: it ends at the newest)."""
    if not events:
        return max(after, last_id)
    newest = int(events[-1]["request_id"])
    return max(newest, last_id) if tail else newest


class _Table:
    """Rows under one header, as wide as the first page needs; later rows are never cut."""

    def __init__(self) -> None:
        self.widths: list[int] | None = None

    def show(self, events: list[dict[str, Any]]) -> None:
        rows = [table_row(event) for event in events]
        if self.widths is None:
            self.widths = [
                max([width, len(title), *(len(row[i]) for row in rows)])
                for i, (title, width) in enumerate(zip(_COLUMNS, _WIDTHS, strict=True))
            ]
            print(self._line(list(_COLUMNS)), flush=True)
        for row in rows:
            print(self._line(row), flush=True)

    def _line(self, cells: list[str]) -> str:
        assert self.widths is not None
        padded = (cell.ljust(width) for cell, width in zip(cells, self.widths, strict=True))
        return "  ".join(padded).rstrip()


def table_row(event: dict[str, Any]) -> list[str]:
    """One event's cells: its request, verdict, kind, visitor, key (the datafile's for a
    conversion sent without one), variation (of its first decision), revenue and uuid."""
    key = event.get("key")
    if key in (None, ""):
        key = event.get("entity_key")
    uuid = _text(event.get("uuid")) + (" (duplicate)" if event.get("duplicate") else "")
    return [
        _text(event.get("request_id")),
        _text(event.get("verdict")),
        _text(event.get("kind")),
        _text(event.get("visitor_id")),
        _text(key),
        _variation(event),
        _text(event.get("revenue")),
        uuid,
    ]


def _variation(event: dict[str, Any]) -> str:
    decisions = event.get("decisions") or []
    if not decisions or not isinstance(decisions[0], dict):
        return ""
    metadata = decisions[0].get("metadata")
    named = (metadata if isinstance(metadata, dict) else {}).get("variation_key")
    resolved = (event.get("decision_keys") or [{}])[0].get("variation_key")
    return _text(named or resolved or decisions[0].get("variation_id"))


def _text(value: Any) -> str:
    return "" if value is None else str(value)
