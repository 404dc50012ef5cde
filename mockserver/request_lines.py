"""The request log: one line per journaled request, at most `LINES_PER_SECOND` a second.

Every request the endpoint answers and journals gets an INFO line on the
`logx_mock.requests` logger (`REQUEST_LOGGER`), with its verdict as the record's
`verdict` attribute. Under load, a console cannot be read at thousands of lines a
second, and making a log record for each was a twentieth of the server's time per
request (benchmarks/NOTES.md): past `LINES_PER_SECOND` in one second, requests are
only counted, by verdict, and one summary line per second says how many were not shown
("... and 6,912 more request(s) in 10:14:05 (6,912 accepted): ..."). The counting is
exact; the journal keeps every request (`logx-mock events`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["LINES_PER_SECOND", "REQUEST_LOGGER", "RequestLines"]

REQUEST_LOGGER = "logx_mock.requests"
"""The logger of the request lines (INFO); each record has the request's `verdict`."""
LINES_PER_SECOND = 50
"""Request lines shown one by one in any second; the rest are summed up."""

request_log = logging.getLogger(REQUEST_LOGGER)


class RequestLines:
    """Logs request lines within the budget, and sums up the rest of each second.

    Thread-safe: the event loop and any thread calling `Endpoint.handle` may note
    requests at once. A second's summary is logged when a request of a later second is
    noted, or by a timer at the end of that second, whichever comes first."""

    def __init__(self, lines_per_second: int = LINES_PER_SECOND) -> None:
        self.lines_per_second = lines_per_second
        self._lock = threading.Lock()
        self._second = 0
        """The second (of `time.time()`) the last noted request was in."""
        self._shown = 0
        """Lines shown in that second."""
        self._held: Counter[str] = Counter()
        """Requests of that second not shown, by verdict."""

    def __repr__(self) -> str:
        return f"<RequestLines {self.lines_per_second}/s>"

    def note(self, verdict: str, line: object) -> None:
        """A request was answered: log `line` (an object whose `str` is the line, built
        only if a handler writes it), or count it when this second's lines are spent."""
        if not request_log.isEnabledFor(logging.INFO):
            return
        second = int(time.time())
        with self._lock:
            summary = self._next_second(second) if second != self._second else None
            shown = self._shown < self.lines_per_second
            if shown:
                self._shown += 1
            else:
                if not self._held:  # the first held back this second: sum up at its end
                    _at_the_end_of(second, self.flush)
                self._held[verdict] += 1
        if summary is not None:
            _log_summary(*summary, self.lines_per_second)
        if shown:
            request_log.info("%s", line, extra={"verdict": verdict})

    def flush(self, *, now: bool = False) -> None:
        """Log the summary of a second that is over (nothing if none is owed); with `now`,
        of the current second too (the server is stopping)."""
        with self._lock:
            over = now or time.time() >= self._second + 1
            summary = self._next_second(self._second) if over else None
        if summary is not None:
            _log_summary(*summary, self.lines_per_second)

    def _next_second(self, second: int) -> tuple[int, Counter[str]] | None:
        """Start counting `second`; what the one before held back (under the lock)."""
        held, self._held = self._held, Counter()
        before, self._second, self._shown = self._second, second, 0
        return (before, held) if held else None


def _at_the_end_of(second: int, then: Callable[[], None]) -> None:
    timer = threading.Timer(max(0.0, second + 1.01 - time.time()), then)
    timer.daemon = True
    timer.start()


def _log_summary(second: int, held: Counter[str], budget: int) -> None:
    count = sum(held.values())
    verdicts = ", ".join(f"{n:,} {verdict}" for verdict, n in held.most_common())
    stamp = time.strftime("%H:%M:%S", time.localtime(second))
    request_log.info(
        "... and %s more request(s) in %s (%s): one line each is shown for the first %d a "
        "second; `logx-mock events` lists every one",
        f"{count:,}",
        stamp,
        verdicts,
        budget,
        extra={"verdict": None},
    )
