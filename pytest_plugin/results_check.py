"""`assert_results`: find one cell of the results table, or say what came close.

The lookup computes the difference once (which of experiment, variation, event and numbers
did not match, and what is there instead), and both the verdict and the message come from it.
"""

from __future__ import annotations

import difflib
from typing import Any

from mockserver import MAX_LIMIT, Endpoint, journal_results

__all__ = ["NUMBERS", "ResultsAssertions", "check_cell"]

NUMBERS = ("visitors", "unique_conversions", "conversions", "revenue")
_SHOWN_UNCOUNTED = 5


def _named(key: Any, ident: Any) -> str:
    return f"{key!r} ({ident})" if key and key != ident else repr(ident)


def _pick(items: list[dict[str, Any]], wanted: str, kind: str) -> tuple[dict[str, Any] | None, str]:
    """The item whose `<kind>_key` or `<kind>_id` is `wanted`, or why none is."""
    for item in items:
        if wanted in (item[f"{kind}_key"], item[f"{kind}_id"]):
            return item, ""
    names = [_named(i[f"{kind}_key"], i[f"{kind}_id"]) for i in items]
    keys = [str(i[f"{kind}_key"] or i[f"{kind}_id"]) for i in items]
    close = difflib.get_close_matches(wanted, keys, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    there = ", ".join(names) if names else "none"
    return None, f"no {kind} {wanted!r} in the results{hint}; {kind}s: {there}"


def _row(experiment: dict[str, Any], variation: dict[str, Any]) -> str:
    cells = "; ".join(
        f"{c['key']}: {c['unique_conversions']} unique, {c['conversions']} conversion(s), "
        f"revenue {c['revenue']}"
        for c in variation["events"]
    )
    name = experiment["experiment_key"] or experiment["experiment_id"]
    variation_name = variation["variation_key"] or variation["variation_id"]
    return f"  {name} / {variation_name}: {variation['visitors']} visitor(s)" + (
        f"; {cells}" if cells else ""
    )


def _uncounted(results: dict[str, Any], event: str | None) -> list[str]:
    """The uncounted events that may explain the miss: of that event key, or impressions."""
    found = [
        f"    - visitor {group['visitor_id']!r} {item['key']!r} (request #{item['request_id']}): "
        f"{item['reason']}: {item['message']}"
        for group in results["uncounted"]
        for item in group["events"]
        if (item["key"] == event if event else item["kind"] == "impression")
    ]
    if not found:
        return []
    more = len(found) - _SHOWN_UNCOUNTED
    tail = [f"    ... and {more} more"] if more > 0 else []
    return ["  did not count:", *found[:_SHOWN_UNCOUNTED], *tail]


def check_cell(
    results: dict[str, Any],
    experiment: str,
    variation: str,
    event: str | None,
    expected: dict[str, int],
) -> str | None:
    """None when the cell holds every `expected` number; else the failure message."""
    where = f"experiment {experiment!r}, variation {variation!r}" + (
        f", event {event!r}" if event else ""
    )
    found, why = _pick(results["experiments"], experiment, "experiment")
    if found is None:
        return f"Results for {where}: {why}."
    chosen, why = _pick(found["variations"], variation, "variation")
    if chosen is None:
        return f"Results for {where}: {why}."
    actual: dict[str, Any] = {"visitors": chosen["visitors"]}
    if event is not None:
        cell = next((c for c in chosen["events"] if c["key"] == event), None)
        if cell is None:
            keys = ", ".join(repr(c["key"]) for c in chosen["events"]) or "none"
            return (
                f"Results for {where}: no conversion {event!r} from this experiment's "
                f"visitors; events: {keys}\n"
                + "\n".join([_row(found, chosen), *_uncounted(results, event)])
            )
        actual.update({name: cell[name] for name in NUMBERS[1:]})
    wrong = {k: v for k, v in expected.items() if actual.get(k) != v}
    if not wrong:
        return None
    misses = ", ".join(f"{k}={v} (got {actual.get(k)})" for k, v in wrong.items())
    return "\n".join(
        [
            f"Results for {where}: expected {misses}.",
            _row(found, chosen),
            *_uncounted(results, event),
        ]
    )


class ResultsAssertions:
    """The handle's results methods (`LogxHandle` mixes them in)."""

    endpoint: Endpoint

    def results(
        self, *, start: int | None = None, end: int | None = None, **filters: str
    ) -> dict[str, Any]:
        """The results table Optimizely would show for the journaled events (matching the
        `/_mock/events` filters, with a timestamp in `[start, end)` when given), and every
        event that does not count, by visitor: the structure `GET /_mock/results` answers."""
        result, last_id = journal_results(
            self.endpoint.journal,
            datafiles=self.endpoint.config.datafiles,
            filters=filters,
            limit=MAX_LIMIT,
            start=start,
            end=end,
        )
        return {**result.to_dict(), "last_id": last_id}

    def assert_results(
        self,
        experiment: str,
        variation: str,
        *,
        event: str | None = None,
        visitors: int | None = None,
        unique_conversions: int | None = None,
        conversions: int | None = None,
        revenue: int | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """Assert one cell of the results: `experiment` and `variation` by key or id, the
        numbers given (`unique_conversions`, `conversions` and `revenue` of `event`). Fails
        saying what the table holds instead, and which events did not count and why."""
        __tracebackhide__ = True
        expected = {
            name: value
            for name, value in (
                ("visitors", visitors),
                ("unique_conversions", unique_conversions),
                ("conversions", conversions),
                ("revenue", revenue),
            )
            if value is not None
        }
        if not expected:
            raise TypeError(
                "assert_results needs a number to check: visitors=, unique_conversions=, "
                "conversions= or revenue="
            )
        if event is None and set(expected) - {"visitors"}:
            raise TypeError(
                "unique_conversions, conversions and revenue belong to an event: pass "
                "event='purchase' (the conversion's key)"
            )
        results = self.results(**filters)
        message = check_cell(results, experiment, variation, event, expected)
        if message is not None:
            raise AssertionError(message)
        return results
