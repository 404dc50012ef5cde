"""The core: everything logx-mock decides about a request to the Log Endpoint.

`Endpoint.handle(CoreRequest) -> Outcome` does the route check, decoding,
validation, anonymization, recording and the response. Doors only translate;
none of them looks at a payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .anonymize import ADDRESS_HEADERS, ClientAddress, TrustedProxies, scrub_headers
from .batch import render_keys, walk
from .cdn import DATAFILES_PREFIX, DatafileCdn
from .contract.crosscheck import resolve
from .contract.datafile import Datafiles
from .contract.decoding import MAX_BODY_BYTES, DecodeError, parse_json, plain_body
from .contract.flatten import flatten_batch
from .contract.quick import clean_body
from .contract.validation import check
from .errors import ConfigError
from .fault_plan import FaultPlan
from .faults import NO_ANSWER, FaultAction
from .journal.base import Journal
from .journal.group import GroupCommitJournal
from .model import CoreRequest, Outcome, RequestRecord, Verdict, truthy
from .problem import problem
from .request_lines import RequestLines
from .violations import Report, Violation

__all__ = [
    "BROWSER_NOISE",
    "EVENTS_PATH",
    "Endpoint",
    "EndpointConfig",
    "is_browser_noise",
    "is_strict",
    "recorded_answer",
]

log = logging.getLogger("logx_mock")

EVENTS_PATH = "/v1/events"
BROWSER_NOISE = frozenset({"/favicon.ico", "/robots.txt", "/apple-touch-icon.png"})
"""Paths browsers and crawlers ask for on their own; `is_browser_noise` says why."""
_CORS_ALLOW_HEADERS = "content-type, content-encoding, x-optimizely-strict"


def is_strict(value: str | None) -> bool:
    """`X-Optimizely-Strict`: `true` and `1` (any case) mean strict; anything else does not."""
    return truthy(value)


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """How the endpoint treats requests; keyword-only, checked on construction."""

    max_body_bytes: int = MAX_BODY_BYTES
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    force_strict: bool = False
    """Treat every request as if it carried `X-Optimizely-Strict: true` (pytest's `strict`)."""
    body_timeout: float = 30.0
    """Seconds a client gets to send its whole body; a stalled upload gets 408."""
    datafiles: Datafiles = field(default_factory=Datafiles)
    """Datafiles to check every batch against (warnings only); none by default."""

    def __post_init__(self) -> None:
        if not isinstance(self.datafiles, Datafiles):
            raise TypeError(f"datafiles must be a Datafiles, got {self.datafiles!r}")
        if self.max_body_bytes < 1:
            raise ConfigError(
                f"must be positive, got {self.max_body_bytes}", setting="max_body_bytes"
            )
        if self.body_timeout <= 0:
            raise ConfigError(f"must be positive, got {self.body_timeout}", setting="body_timeout")


@dataclass
class _Pending:
    """A judged record, to be committed (and decided by the fault plan) before it is
    answered."""

    record: RequestRecord
    cors: list[tuple[str, str]]


class Endpoint:
    """The Log Endpoint's behaviour over a `Journal`."""

    def __init__(self, journal: Journal, *, config: EndpointConfig | None = None) -> None:
        self.journal = journal
        self.config = config or EndpointConfig()
        if isinstance(journal, GroupCommitJournal):
            journal.follow_datafiles(self._follow)
            if not self.config.datafiles:  # the journal's, when none are given
                self._follow(journal.stored_datafiles())
        self.cdn = DatafileCdn()
        """Serves the loaded datafiles to SDKs (`GET /datafiles/{sdk_key}.json`)."""
        self.request_lines = RequestLines()
        """One log line per journaled request, at most `LINES_PER_SECOND` a second."""

    @property
    def faults(self) -> FaultPlan:
        """The fault plan: the journal's, which decides each request as it commits it (so
        a plan in a shared journal is shared too)."""
        return self.journal.faults

    def __repr__(self) -> str:
        return f"<Endpoint journal={self.journal!r}>"

    def use_datafiles(self, datafiles: Datafiles) -> None:
        """Check the next batches against `datafiles` (the config is replaced whole, so a
        request in flight keeps the one it started with)."""
        self.change_datafiles(lambda _: datafiles)

    def change_datafiles(self, change: Callable[[Datafiles], Datafiles]) -> Datafiles:
        """Check the next batches against what `change` makes of the current datafiles.

        Over a journal that stores them (SQLite, PostgreSQL) the change is made to the
        stored set, atomically, and every endpoint on that journal, in any process,
        follows it; otherwise to this endpoint's config."""
        if isinstance(self.journal, GroupCommitJournal):
            return self.journal.change_datafiles(change)  # _follow applies it here
        changed = change(self.config.datafiles)
        self._follow(changed)
        return changed

    def _follow(self, datafiles: Datafiles) -> None:
        self.config = dataclasses.replace(self.config, datafiles=datafiles)

    def handle(self, request: CoreRequest) -> Outcome:
        """Answer one request, blocking until it is committed."""
        step = self._start(request)
        if isinstance(step, Outcome):
            return step
        try:
            self.journal.commit_sync(step.record)
        except Exception as exc:
            return self._unavailable(step, exc)
        return self._finish(step)

    async def handle_async(self, request: CoreRequest) -> Outcome:
        """Answer one request without blocking the event loop on the commit."""
        step = self._start(request)
        if isinstance(step, Outcome):
            return step
        try:
            await self.journal.commit(step.record)
        except Exception as exc:
            return self._unavailable(step, exc)
        return self._finish(step)

    def handle_soon(
        self,
        request: CoreRequest,
        answer: Callable[[Outcome], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Answer one request from an event loop's thread without a coroutine: `answer` is
        called on that loop (`loop`, the running one, when the caller knows it) with the
        outcome once the request is committed (at once when nothing is to be committed, or
        the journal commits in this thread)."""
        step = self._start(request)
        if isinstance(step, Outcome):
            answer(step)
            return

        def committed(error: Exception | None) -> None:
            answer(self._finish(step) if error is None else self._unavailable(step, error))

        self.journal.commit_soon(step.record, committed, loop)

    def _start(self, request: CoreRequest) -> Outcome | _Pending:
        if request.path.startswith(DATAFILES_PREFIX):
            return self.cdn.answer(request, self.config.datafiles)
        if request.path.rstrip("/") != EVENTS_PATH:
            record = self._not_found(request, 404)
            if is_browser_noise(request):
                return _verdict_outcome(record, [])  # answered, not journaled
            return _Pending(record, [])
        cors = _cors_headers(request)
        if request.method == "OPTIONS":
            return Outcome(204, cors + _preflight_headers(request))
        if request.method != "POST":
            return _Pending(self._not_found(request, 405), cors)
        if len(request.body) < _LARGE_BODY:
            return _Pending(self._judge(request), cors)
        with _no_cycle_collection():
            return _Pending(self._judge(request), cors)

    def _not_found(self, request: CoreRequest, status: int) -> RequestRecord:
        """The record of a request to a path the endpoint does not serve (404) or with a
        method it refuses (405): journaled, so a client's wrong URL leaves a trace."""
        record = self._record(request, status, "not_found")
        record.errors = [_route_violation(request.method, request.path, status)]
        record.raw = None if request.too_large else request.body
        self._anonymize(request, record)
        return record

    def _record(self, request: CoreRequest, status: int, verdict: Verdict) -> RequestRecord:
        """A new record of `request`, before its payload is read."""
        strict_header = request.header("x-optimizely-strict")
        return RequestRecord(
            id=0,
            received_at=request.received_at,
            method=request.method,
            path=request.path,
            host=request.host,
            headers=list(request.headers),
            client_ip=None,
            strict=self.config.force_strict or is_strict(strict_header),
            strict_header=strict_header,
            status=status,
            verdict=verdict,
        )

    def _judge(self, request: CoreRequest) -> RequestRecord:
        """Decode, validate and anonymize: the whole verdict, before anything is stored."""
        record = self._record(request, 204, "accepted")
        strict = record.strict
        report = Report()
        try:
            if request.too_large:
                raise DecodeError(
                    f"the body is over the {self.config.max_body_bytes:,}-byte limit; "
                    "split the batch",
                    too_large=True,
                )
            body = plain_body(
                request.body, request.header("content-encoding"), self.config.max_body_bytes
            )
            now_ms = int(request.received_at * 1000)
            # Most batches are clean: say so in C, decoding straight into typed structs,
            # and decode the dicts and report in full only when not.
            clean = clean_body(body, now_ms)
            if clean is not None and not self.config.datafiles:
                # The hot path: nothing to report, no datafile keys to find, so no walk,
                # and the payload decoded only if someone reads it.
                record.defer_payload(body)
                record.compact, anonymize = clean  # records built if read
                return self._judged(request, record, report, anonymize=anonymize)
            payload = parse_json(body)
        except DecodeError as exc:
            record.verdict, record.status = (
                ("too_large", 413) if exc.too_large else ("malformed", 400)
            )
            rule = "size" if exc.too_large else "json"
            report.errors.append(Violation("$", rule, exc.message))
            record.raw = None if exc.too_large else request.body
        else:
            batch = walk(payload)
            if clean is None:
                report = check(batch, now_ms=now_ms)
            if not batch.is_object or _too_deep(report):
                # Kept as text: no later step should parse or walk it again.
                record.verdict, record.status, record.raw = "malformed", 400, body
            else:
                record.payload, record.source = payload, body
                keys = resolve(batch, self.config.datafiles, report)
                if keys:
                    record.keys = render_keys(keys)
                if not report.ok:
                    record.verdict, record.status = "rejected", 400 if strict else 204
                record.events = flatten_batch(
                    batch, verdict=record.verdict, received_at=request.received_at, keys=keys
                )
        return self._judged(request, record, report)

    def _judged(
        self,
        request: CoreRequest,
        record: RequestRecord,
        report: Report,
        *,
        anonymize: bool | None = None,
    ) -> RequestRecord:
        """The judged record with its report, anonymized."""
        _check_content_type(request, report)
        record.errors, record.warnings, record.unknown_fields = (
            report.errors,
            report.warnings,
            report.notes,
        )
        self._anonymize(request, record, anonymize)
        return record

    def _anonymize(
        self, request: CoreRequest, record: RequestRecord, anonymize: bool | None = None
    ) -> None:
        """Store the client's address as the batch asks (`anonymize_ip`: read from the
        payload unless the caller read it already) and scrub address headers."""
        if anonymize is None:
            payload = record.payload
            anonymize = not (isinstance(payload, dict) and payload.get("anonymize_ip") is False)
        # Every X-Forwarded-For line, in order: the last one is the nearest proxy's.
        forwarded = (
            [value for name, value in request.headers if name.lower() == "x-forwarded-for"]
            if request.header("x-forwarded-for") is not None
            else None
        )
        client = ClientAddress.resolve(
            request.peer,
            ",".join(forwarded) if forwarded else None,
            self.config.trusted_proxies,
            anonymize=anonymize,
        )
        record.client_ip = client.stored
        if anonymize and request.has_any_header(ADDRESS_HEADERS):
            record.headers = scrub_headers(record.headers)

    def _finish(self, step: _Pending) -> Outcome:
        record, fault = step.record, step.record.action
        self.request_lines.note(record.verdict, _LogLine(record))  # formatted only if written
        if fault is not None and fault.faulted:
            return _fault_outcome(record, fault, step.cors)
        outcome = _verdict_outcome(record, step.cors)
        outcome.fault = fault
        return outcome

    def _unavailable(self, step: _Pending, exc: Exception) -> Outcome:
        if step.record.verdict == "not_found":  # nothing to resend: still say where to go
            log.error("request to %s not recorded: %s", step.record.path, exc)
            return _verdict_outcome(step.record, step.cors)
        log.error("request not recorded, answering 503: %s", exc)
        headers, body = problem(
            "unavailable",
            503,
            f"{exc}. Nothing was recorded; resend the batch once the journal is writable.",
        )
        return Outcome(503, [*headers, ("retry-after", "1"), *step.cors], body)


def recorded_answer(record: RequestRecord) -> Outcome:
    """The answer a journaled request got, rebuilt from its record as `Endpoint` built it
    (status, headers, body; a fault's delay is not part of it). Status 0: no HTTP answer
    (a reset, close or hang fault). For exports: a HAR entry's response."""
    cors = _cors_headers(CoreRequest(record.method, record.path, headers=record.headers))
    fault = record.fault
    if fault is not None and fault.get("kind") != "delay":
        action = FaultAction(
            rule_id=fault.get("rule", 0),
            seed=fault.get("seed"),
            kind=fault.get("kind"),
            status=fault.get("status"),
            retry_after=fault.get("retry_after"),
        )
        return _fault_outcome(record, action, cors)
    return _verdict_outcome(record, cors)


def is_browser_noise(request: CoreRequest) -> bool:
    """A request a browser or crawler makes by itself (`GET /favicon.ico` whenever it shows
    a page from this server, `/robots.txt`, Chromium devtools' `/.well-known/...`): answered
    404 but not journaled, since no client of the Log Endpoint sent it by mistake."""
    return request.method in ("GET", "HEAD") and (
        request.path in BROWSER_NOISE or request.path.startswith("/.well-known/")
    )


def _route_violation(method: str, path: str, status: int) -> Violation:
    """Why a request was not_found, and where to send it instead."""
    if status == 405:
        return Violation(
            "$",
            "method",
            f"{method} is not allowed; send POST {EVENTS_PATH}",
            f"POST {EVENTS_PATH}",
            method,
        )
    return Violation(
        "$",
        "path",
        f"{path} is not served; post batches to {EVENTS_PATH} "
        f"(datafiles are at {DATAFILES_PREFIX}{{sdk_key}}.json)",
        EVENTS_PATH,
        path,
    )


def _not_found_outcome(record: RequestRecord, cors: list[tuple[str, str]]) -> Outcome:
    """404 for a wrong path, 405 (with `Allow`) for a refused method: a problem naming the
    path, with the hint."""
    kind = "method" if record.status == 405 else "not_found"
    hint = _route_violation(record.method, record.path, record.status).message
    extra: dict[str, Any] = {"request_id": record.id} if record.id else {}
    headers, body = problem(
        kind, record.status, hint, method=record.method, path=record.path, **extra
    )
    if record.status == 405:
        headers += [("allow", "POST, OPTIONS"), *cors]
    return Outcome(record.status, headers, body, record)


def _verdict_outcome(record: RequestRecord, cors: list[tuple[str, str]]) -> Outcome:
    """The answer to a request that got its verdict's status: 204, or a problem."""
    if record.verdict == "not_found":
        return _not_found_outcome(record, cors)
    if record.status not in (400, 413):
        return Outcome(record.status, cors, b"", record)
    kind = {400: "invalid", 413: "too_large"}[record.status]
    if record.verdict == "malformed":
        kind = "malformed"
    detail = _detail(record)
    headers, body = problem(
        kind, record.status, detail, violations=record.errors, request_id=record.id
    )
    if record.status == 413:
        # The rest of the body was never read: close rather than drain it.
        headers.append(("connection", "close"))
    return Outcome(record.status, headers + cors, body, record)


_LARGE_BODY = 256 * 1024
"""From this size on, a batch is judged with the cycle collector paused."""


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector while a large batch is judged.

    Judging a 3.5 MB batch makes ~100,000 containers that all live until it is judged
    (the decoded payload, its walk, its events); each young-generation collection would
    walk the survivors again, and the growth sets off full collections over the whole
    heap: half the time of the judgement (benchmarks/NOTES.md). The judgement makes no
    reference cycles (the walk's positions know their paths, not their parents), so
    nothing is left for the collector afterwards that a pause would leak. Only the
    thread that found it enabled enables it again."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _too_deep(report: Report) -> bool:
    return any(v.rule == "depth" for v in report.errors)


def _fault_outcome(
    record: RequestRecord, fault: FaultAction, cors: list[tuple[str, str]]
) -> Outcome:
    if fault.kind in NO_ANSWER:
        return Outcome(0, [], b"", record, fault)  # reset, close, hang: no HTTP answer
    status = fault.status or 500
    seed = "" if fault.seed is None else f", seed {fault.seed}"
    headers, body = problem(
        "fault",
        status,
        f"injected by fault rule #{fault.rule_id}{seed}; the events were not recorded, resend them",
        request_id=record.id,
        rule=fault.rule_id,
        seed=fault.seed,
    )
    if fault.retry_after is not None:
        headers.append(("retry-after", str(fault.retry_after)))
    return Outcome(status, headers + cors, body, record, fault)


def _detail(record: RequestRecord) -> str:
    if record.verdict == "rejected":
        count = len(record.errors)
        return (
            f"{count} contract violation{'s' * (count != 1)}; fix them, or drop "
            "X-Optimizely-Strict to get the permissive 204 (the batch would still be dropped)"
        )
    return record.errors[0].message if record.errors else "the request cannot be read"


def _check_content_type(request: CoreRequest, report: Report) -> None:
    content_type = request.header("content-type")
    if content_type == "application/json":  # what every SDK sends
        return
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        report.warn(
            "$",
            "content_type",
            "the SDKs send Content-Type: application/json; a proxy or the real endpoint may not "
            "read this body as JSON",
            "application/json",
            content_type,
        )


def _cors_headers(request: CoreRequest) -> list[tuple[str, str]]:
    origin = request.header("origin")
    if not origin:
        return [("access-control-allow-origin", "*")]
    # Beacons are sent with credentials, so `*` would not do: echo the origin.
    return [
        ("access-control-allow-origin", origin),
        ("access-control-allow-credentials", "true"),
        ("vary", "Origin"),
    ]


def _preflight_headers(request: CoreRequest) -> list[tuple[str, str]]:
    asked = request.header("access-control-request-headers")
    return [
        ("access-control-allow-methods", "POST, OPTIONS"),
        ("access-control-allow-headers", asked or _CORS_ALLOW_HEADERS),
        ("access-control-max-age", "86400"),
    ]


class _LogLine:
    """A request's log line, built when (and where) a handler formats it."""

    __slots__ = ("record",)

    def __init__(self, record: RequestRecord) -> None:
        self.record = record

    def __str__(self) -> str:
        return _log_line(self.record)


def _visitor_count(record: RequestRecord) -> int:
    """How many visitors `walk` would find (the items of an array `visitors`), counted
    without walking the batch again (nor decoding a clean batch's payload)."""
    compact = record.compact
    if compact is not None:
        return compact.visitors
    payload = record.payload
    visitors = payload.get("visitors") if payload.__class__ is dict else None
    return len(visitors) if visitors.__class__ is list else 0


def _log_line(record: RequestRecord) -> str:
    if record.verdict == "not_found":
        hint = record.errors[0].message if record.errors else ""
        return (
            f"#{record.id} {record.status} not_found from {record.client_ip or '-'}: "
            f"{record.method} {record.path}: {hint}"
        )
    count = _visitor_count(record)
    fault = record.fault
    note = f" [fault: {fault['kind']}, rule #{fault['rule']}]" if fault else ""
    return (
        f"#{record.id} {record.status} {record.verdict} from {record.client_ip or '-'}: "
        f"{count} visitor(s), {record.event_count} event(s), {len(record.errors)} error(s), "
        f"{len(record.warnings)} warning(s){note}"
    )
