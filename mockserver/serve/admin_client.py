"""What the commands that read a server's events share (`events`, `results`, `export`,
`check`): the event filter options, and one GET of the admin API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from ..journal.filters import EVENT_FILTERS, FILTER_CHOICES, FILTER_HELP

__all__ = ["add_filter_arguments", "admin_get", "chosen_filters"]


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per event filter (`--flag-key`, ...), each described, an enum filter
    refusing a value it cannot take."""
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
    """The filters given on the command line (`add_filter_arguments`)."""
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
