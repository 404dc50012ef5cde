"""One handle, the same assertion API for every fixture.

`LogxHandle` reads a journal and asserts in Optimizely's terms (impressions,
conversions). `ServerHandle` adds the URLs of a live server. The plugin's
teardown check calls the same public `assert_no_rejections` a user can call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from mockserver import (
    DATAFILE_RULES,
    EVENTS_PATH,
    MAX_LIMIT,
    REFUSED,
    Endpoint,
    EventRecord,
    FaultPlan,
    Journal,
    RequestRecord,
    Verdict,
)

from .matching import check_filters, describe_event, difference, near_misses
from .results_check import ResultsAssertions

__all__ = ["Attempt", "DatafileWarning", "LogxHandle", "ServerHandle", "summarize"]


class DatafileWarning(UserWarning):
    """A request the datafile contradicts: production answers 204 and results drop it.

    The plugin issues one after each test for every request with datafile warnings, so
    they show in pytest's warnings summary; `-W error::pytest_plugin.DatafileWarning`
    (or `filterwarnings`) turns them into failures.
    """


_UNSET: Any = object()


def delivered(filters: dict[str, Any]) -> dict[str, Any]:
    """The filters of a lookup that means delivered events: `verdict="accepted"` unless
    the caller names a verdict; `verdict=None` drops the verdict filter (any arrival)."""
    if "verdict" not in filters:
        return {**filters, "verdict": "accepted"}
    if filters["verdict"] is None:
        return {k: v for k, v in filters.items() if k != "verdict"}
    return filters


def _describe_filters(filters: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in filters.items()) or "(no filter)"


def summarize(requests: list[RequestRecord]) -> str:
    """The journal as a few lines: one per request, with its errors."""
    if not requests:
        return (
            "The journal is empty: no event batch reached the mock (datafile fetches are "
            "not journaled; an unknown sdk_key is a logx_mock warning in the captured log)."
        )
    lines = [f"{len(requests)} request(s) reached the mock:"]
    for record in requests:
        lines.append(
            f"  #{record.id} {record.status} {record.verdict}: {len(record.events)} event(s),"
            f" {len(record.errors)} error(s), {len(record.warnings)} warning(s)"
        )
        lines.extend(f"      error {v}" for v in record.errors)
    return "\n".join(lines)


def warning_lines(requests: list[RequestRecord], rules: set[str] | None) -> list[str]:
    """`  request #N: path: message [rule]` for each warning of `rules` (all when None)."""
    return [
        f"  request #{record.id}: {warning}"
        for record in requests
        for warning in record.warnings
        if rules is None or warning.rule in rules
    ]


def datafile_warnings(requests: list[RequestRecord], expected: Iterable[str] = ()) -> list[str]:
    """One line per warning a datafile raised (what the plugin reports after a test),
    but for the `expected` rules (the test means to provoke those)."""
    return warning_lines(requests, set(DATAFILE_RULES) - set(expected))


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One arrival of an event: when, and what the client got."""

    request_id: int
    received_at: float
    verdict: Verdict
    status: int | None
    fault: dict[str, Any] | None

    def __str__(self) -> str:
        answer = "no answer" if self.status == 0 else f"answered {self.status}"
        fault = f", fault {self.fault['kind']} (rule #{self.fault['rule']})" if self.fault else ""
        return f"request #{self.request_id}: {self.verdict}, {answer}{fault}"


class LogxHandle(ResultsAssertions):
    """What a test sees of the mock: its journal, and assertions over it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.journal!r}>"

    @property
    def journal(self) -> Journal:
        return self.endpoint.journal

    @property
    def requests(self) -> list[RequestRecord]:
        """Every journaled request, oldest first."""
        return self.journal.requests(limit=MAX_LIMIT)

    @property
    def events(self) -> list[EventRecord]:
        """Every journaled event, in arrival order (all verdicts)."""
        return self.journal.events(limit=MAX_LIMIT)

    def get_events(self, **filters: Any) -> list[EventRecord]:
        """Delivered events matching every filter: any event field (`tags` and
        `attributes` as a subset), or a decision field such as `experiment_id` or `flag_key`.

        Like every lookup and wait of the handle, this means *delivered* events: only
        `verdict="accepted"` ones, unless you pass a verdict (`verdict="faulted"`, or
        `verdict=None` for every arrival). `events` lists them all.
        """
        return self._matching(delivered(filters))

    def _matching(self, filters: dict[str, Any]) -> list[EventRecord]:
        check_filters(filters)
        return [e for e in self.events if not difference(e, filters)]

    def get_event(self, **filters: Any) -> EventRecord:
        """The one delivered event matching `filters` (`verdict="accepted"` unless you pass
        a verdict); fails listing what matched or came close."""
        __tracebackhide__ = True
        filters = delivered(filters)
        found = self._matching(filters)
        if len(found) == 1:
            return found[0]
        if found:
            listed = "\n".join(f"  - {describe_event(e)}" for e in found)
            raise AssertionError(
                f"Expected exactly one event with {_describe_filters(filters)}, "
                f"found {len(found)}:\n{listed}"
            )
        raise AssertionError(
            f"Expected exactly one event with {_describe_filters(filters)}, found none.\n"
            + near_misses(self.events, filters)
        )

    def wait_for_events(
        self, count: int = 1, timeout: float = 5.0, **filters: Any
    ) -> list[EventRecord]:
        """Block until `count` matching events were delivered (for SDKs that dispatch from
        a thread); fails after `timeout` seconds showing what did arrive.

        Delivered means `verdict="accepted"` unless you pass a verdict: a faulted first
        attempt does not end the wait, its accepted retry does (then read
        `attempts(uuid)`).
        """
        __tracebackhide__ = True
        filters = delivered(filters)
        check_filters(filters)
        deadline = time.monotonic() + timeout
        while True:
            seen = self.journal.last_id
            found = self._matching(filters)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.journal.wait_for(seen, remaining):
                found = self._matching(filters)
                if len(found) >= count:
                    return found
                raise AssertionError(
                    f"Waited {timeout:g}s for {count} event(s) with {_describe_filters(filters)}, "
                    f"got {len(found)}.\n" + near_misses(self.events, filters)
                )

    def _assert_events(
        self, what: str, filters: dict[str, Any], count: int | None
    ) -> list[EventRecord]:
        __tracebackhide__ = True
        filters = delivered({k: v for k, v in filters.items() if v is not _UNSET})
        found = self._matching(filters)
        if (count is None and found) or (count is not None and len(found) == count):
            return found
        wanted = "at least one" if count is None else f"exactly {count}"
        raise AssertionError(
            f"Expected {wanted} {what} with {_describe_filters(filters)}, found {len(found)}.\n"
            + near_misses(self.events, filters)
        )

    def assert_impression(
        self,
        *,
        visitor_id: Any = _UNSET,
        experiment_id: Any = _UNSET,
        variation_id: Any = _UNSET,
        campaign_id: Any = _UNSET,
        experiment_key: Any = _UNSET,
        flag_key: Any = _UNSET,
        rule_key: Any = _UNSET,
        variation_key: Any = _UNSET,
        count: int | None = None,
        **filters: Any,
    ) -> list[EventRecord]:
        """Assert accepted impressions (decisions) arrived; returns them.

        `experiment_key`, `variation_key` and `flag_key` match the decision's metadata, or,
        when the SDK sent only ids, the keys a datafile resolved (`logx(datafile=...)`).
        """
        __tracebackhide__ = True
        return self._assert_events(
            "impression",
            dict(
                kind="impression",
                visitor_id=visitor_id,
                experiment_id=experiment_id,
                variation_id=variation_id,
                campaign_id=campaign_id,
                experiment_key=experiment_key,
                flag_key=flag_key,
                rule_key=rule_key,
                variation_key=variation_key,
                **filters,
            ),
            count,
        )

    def assert_conversion(
        self,
        key: Any = _UNSET,
        *,
        visitor_id: Any = _UNSET,
        revenue: Any = _UNSET,
        value: Any = _UNSET,
        tags: Any = _UNSET,
        count: int | None = None,
        **filters: Any,
    ) -> list[EventRecord]:
        """Assert accepted conversions (tracked events) arrived; returns them.

        `key` matches the event's key, or, when it was sent with only its entity_id, the
        event key a datafile resolved.
        """
        __tracebackhide__ = True
        return self._assert_events(
            "conversion",
            dict(
                kind="conversion",
                key=key,
                visitor_id=visitor_id,
                revenue=revenue,
                value=value,
                tags=tags,
                **filters,
            ),
            count,
        )

    def assert_no_rejections(self) -> None:
        """Fail listing every request the real endpoint would have dropped or refused."""
        __tracebackhide__ = True
        bad = [r for r in self.requests if r.verdict in REFUSED]
        if not bad:
            return
        lines = [
            f"{len(bad)} request(s) would be dropped or refused by Optimizely (it answers a "
            "rejected batch 204 and discards it; a wrong path or method is never delivered):"
        ]
        for record in bad:
            lines.append(f"  request #{record.id} ({record.verdict}, answered {record.status}):")
            lines.extend(f"    - {v}" for v in record.errors)
        lines.append(
            "Fix the payloads, or mark the test @pytest.mark.logx(allow_rejected=True) "
            "if sending them is the point."
        )
        raise AssertionError("\n".join(lines))

    def assert_no_warnings(self, *rules: str) -> None:
        """Fail listing every warning (only those of `rules`, when given), with its path:
        the batches were accepted, but their data would probably not count in results."""
        __tracebackhide__ = True
        lines = warning_lines(self.requests, set(rules) or None)
        if lines:
            raise AssertionError(
                f"{len(lines)} warning(s) (accepted by the real endpoint, but the data would "
                "probably not count in results):\n" + "\n".join(lines)
            )

    def assert_warnings(self, *rules: str) -> None:
        """Fail unless each of `rules` was warned at least once (what
        `@pytest.mark.logx(expect_warnings=[...])` checks after the test)."""
        __tracebackhide__ = True
        requests = self.requests
        came = {warning.rule for record in requests for warning in record.warnings}
        missing = [rule for rule in dict.fromkeys(rules) if rule not in came]
        if missing:
            raise AssertionError(
                f"Expected the warning(s) {', '.join(missing)}, but none came.\n"
                + summarize(requests)
                + "".join(f"\n{line}" for line in warning_lines(requests, None))
            )

    def reset(self) -> None:
        """Forget every journaled request, remove every fault and cut pending delays short."""
        self.faults.clear()
        self.journal.clear()

    @property
    def faults(self) -> FaultPlan:
        """The fault plan: `faults.add(status=503, times=2)`, `with faults.inject(...)`."""
        return self.endpoint.faults

    def attempts(self, uuid: str) -> list[Attempt]:
        """Every arrival of the event with this uuid, oldest first, with its outcome."""
        records = {r.id: r for r in self.requests}
        result = []
        for event in self.journal.events(uuid=uuid, limit=MAX_LIMIT):
            record = records.get(event.request_id)
            result.append(
                Attempt(
                    request_id=event.request_id,
                    received_at=event.received_at,
                    verdict=event.verdict,
                    status=record.status if record else None,
                    fault=record.fault if record else None,
                )
            )
        return result

    def assert_delivered_once(self, *uuids: str) -> None:
        """Each event (every uuid seen, or those given) was accepted exactly once:
        resent after every fault, and never again after a 204 the client lost."""
        __tracebackhide__ = True
        wanted = list(uuids) or list(dict.fromkeys(str(e.uuid) for e in self.events))
        wrong = {}
        for uuid in wanted:
            attempts = self.attempts(uuid)
            if sum(a.verdict == "accepted" for a in attempts) != 1:
                wrong[uuid] = attempts
        if not wrong:
            return
        lines = [f"{len(wrong)} event(s) were not delivered exactly once:"]
        for uuid, attempts in wrong.items():
            accepted = sum(a.verdict == "accepted" for a in attempts)
            lines.append(
                f"  uuid {uuid!r}: accepted {accepted} time(s) in {len(attempts)} arrival(s)"
            )
            lines.extend(f"    - {a}" for a in attempts)
        raise AssertionError("\n".join(lines))


class ServerHandle(LogxHandle):
    """A live server's handle: the same API, plus where to send requests."""

    def __init__(self, endpoint: Endpoint, url: str) -> None:
        super().__init__(endpoint)
        self.url = url

    def __repr__(self) -> str:
        return f"<ServerHandle {self.url} {self.journal!r}>"

    @property
    def events_url(self) -> str:
        """Give this to clients instead of https://logx.optimizely.com/v1/events."""
        return self.url + EVENTS_PATH
