"""`logx-mock results`: the admin API's results, printed as one table per experiment and
the events that did not count, by visitor."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from ..journal.base import DEFAULT_LIMIT
from ..web.guard import ADMIN_PREFIX
from .remote import add_filter_options, admin_get, chosen_filters

__all__ = ["add_results_command", "render_results", "run_results"]

_HEAD = ("variation", "visitors", "event", "unique", "conversions", "revenue")


def _named(key: Any, ident: Any) -> str:
    return f"{key} ({ident})" if key and key != ident else str(ident)


def _experiment_lines(experiment: dict[str, Any]) -> list[str]:
    about = [f"experiment {experiment['experiment_id']}"]
    if experiment["flag_key"]:
        about.append(f"flag {experiment['flag_key']}")
    if experiment["rule_type"]:
        about.append(experiment["rule_type"])
    title = experiment["experiment_key"] or experiment["experiment_id"]
    rows: list[tuple[str, ...]] = [_HEAD]
    for variation in experiment["variations"]:
        name = _named(variation["variation_key"], variation["variation_id"])
        visitors = str(variation["visitors"])
        events = variation["events"] or [None]
        for index, cell in enumerate(events):
            lead = (name, visitors) if index == 0 else ("", "")
            if cell is None:
                rows.append((*lead, "", "", "", ""))
                continue
            numbers = (cell["unique_conversions"], cell["conversions"], cell["revenue"])
            rows.append((*lead, str(cell["key"]), *(str(n) for n in numbers)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    lines = [f"{title} ({', '.join(about)})"]
    for row in rows:
        cells = [
            text.rjust(width) if i in (1, 3, 4, 5) else text.ljust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _uncounted_lines(result: dict[str, Any]) -> list[str]:
    total = sum(result["reasons"].values())
    if not total:
        return ["Every accepted event counted."]
    by_reason = ", ".join(f"{name} {count}" for name, count in result["reasons"].items())
    lines = [f"Did not count: {total} event(s) ({by_reason}):"]
    for group in result["uncounted"]:
        lines.append(f"  visitor {group['visitor_id']!r}")
        for item in group["events"]:
            lines.append(
                f"    request #{item['request_id']} {item['path']} {item['key']!r}: "
                f"{item['reason']}: {item['message']}"
            )
    if result["left_off"]:
        lines.append(f"  ... and {result['left_off']} more (raise --limit to list them)")
    return lines


def render_results(result: dict[str, Any]) -> str:
    """One table per experiment, then the events that did not count, by visitor."""
    lines: list[str] = []
    for experiment in result["experiments"]:
        lines += [*_experiment_lines(experiment), ""]
    if result.get("experiments_left_off"):
        lines += [
            f"... and {result['experiments_left_off']} more experiment(s) past the table's "
            "size bound (narrow it with the event filters)",
            "",
        ]
    if not result["experiments"]:
        lines += ["No experiment has a visitor yet (no accepted impression with ids).", ""]
    return "\n".join(lines + _uncounted_lines(result))


def add_results_command(commands: Any) -> None:
    """Add `results` to the command line's subcommands."""
    results = commands.add_parser(
        "results", help="the results an experiment would show, and what did not count"
    )
    results.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    add_filter_options(results)
    results.add_argument("--after", type=int, default=0, help="only requests with a greater id")
    results.add_argument(
        "--start", type=int, metavar="MS", help="only events at or after (epoch ms)"
    )
    results.add_argument("--end", type=int, metavar="MS", help="only events before (epoch ms)")
    results.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help="uncounted events to list"
    )
    results.add_argument("--token", metavar="TOKEN", help="the server's --admin-token")
    results.add_argument("--json", action="store_true", help="the admin API's JSON answer")


def run_results(args: argparse.Namespace) -> int:
    """Print the results of a running server; 2 when it cannot be asked."""
    filters = chosen_filters(args)
    params = {**filters, "after": args.after, "limit": args.limit}
    params.update({k: getattr(args, k) for k in ("start", "end") if getattr(args, k) is not None})
    auth = {"authorization": f"Bearer {args.token}"} if args.token else {}
    base = args.url.rstrip("/")
    with httpx.Client(timeout=600.0, headers=auth) as client:  # a big journal takes a while
        body = admin_get(client, base, f"{ADMIN_PREFIX}/results", params)
    if body is None:
        return 2
    print(json.dumps(body, ensure_ascii=False) if args.json else render_results(body))
    return 0
