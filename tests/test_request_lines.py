"""The request log's budget: at most N lines a second, the rest counted exactly by verdict
into one summary line per second, logged when a later second begins or by a timer when
the second ends; thread-safe; nothing at all when nobody listens."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest

from mockserver.request_lines import REQUEST_LOGGER, RequestLines


def _early_in_a_second() -> None:
    """Wait, if need be, until at least half a second is left in the current second."""
    if time.time() % 1 > 0.5:
        time.sleep(1.02 - time.time() % 1)


def _noted(
    caplog: pytest.LogCaptureFixture, budget: int, lines: list[tuple[str, str]]
) -> RequestLines:
    """A RequestLines of `budget` lines a second that noted `lines` (verdict, line) early in
    a second, its log captured."""
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    noted = RequestLines(budget)
    _early_in_a_second()
    for verdict, line in lines:
        noted.note(verdict, line)
    return noted


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == REQUEST_LOGGER]


def _summaries(caplog: pytest.LogCaptureFixture, timeout: float = 5) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in _messages(caplog) if m.startswith("... and ")]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_lines_past_the_budget_are_summed_up_by_verdict_when_the_second_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verdicts = ["accepted"] * 7 + ["rejected"] * 2 + ["faulted"]
    _noted(caplog, 3, [(v, f"#{n} {v}") for n, v in enumerate(verdicts, 1)])
    second = int(time.time())
    assert _messages(caplog) == ["#1 accepted", "#2 accepted", "#3 accepted"]
    (summary,) = _summaries(caplog)  # the timer's, nothing else was noted
    stamp = time.strftime("%H:%M:%S", time.localtime(second))
    assert summary == (
        f"... and 7 more request(s) in {stamp} (4 accepted, 2 rejected, 1 faulted): one line "
        "each is shown for the first 3 a second; `logx-mock events` lists every one"
    )
    shown = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert [getattr(r, "verdict", "-") for r in shown] == [
        "accepted",
        "accepted",
        "accepted",
        None,
    ]


def test_a_later_second_logs_the_summary_before_its_own_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = _noted(caplog, 1, [("accepted", f"#{n}") for n in (1, 2, 3)])
    time.sleep(1.02 - time.time() % 1)  # the next second, before the timer fires
    lines.note("rejected", "#4")
    messages = _messages(caplog)
    assert messages[0] == "#1"
    assert messages[1].startswith("... and 2 more request(s) in ")
    assert messages[2] == "#4"
    time.sleep(1.2)
    assert len(_messages(caplog)) == 3  # the timer found nothing more owed


def test_counting_is_exact_across_threads(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    lines = RequestLines(5)

    def post(thread: int) -> None:
        for n in range(500):
            lines.note("accepted", f"#{thread}-{n}")

    threads = [threading.Thread(target=post, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.2)
    lines.flush()
    messages = _messages(caplog)
    held = sum(
        int(m.replace(",", ""))
        for m in re.findall(r"^\.\.\. and ([\d,]+) more", "\n".join(messages), re.M)
    )
    shown = [m for m in messages if m.startswith("#")]
    assert len(shown) + held == 2000
    assert len(set(shown)) == len(shown)


def test_nothing_is_made_when_nobody_listens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=REQUEST_LOGGER)

    class Line:
        built = 0

        def __str__(self) -> str:
            Line.built += 1
            return "line"

    lines = RequestLines(1)
    for _ in range(5):
        lines.note("accepted", Line())
    time.sleep(1.2)
    assert Line.built == 0
    assert _messages(caplog) == []


def test_flush_now_sums_up_the_current_second(caplog: pytest.LogCaptureFixture) -> None:
    """What a stopping server calls: nothing held back goes unsaid."""
    lines = _noted(caplog, 1, [("accepted", f"#{n}") for n in (1, 2, 3)])
    lines.flush()
    assert _messages(caplog) == ["#1"]  # the second is not over
    lines.flush(now=True)
    assert _messages(caplog)[1].startswith("... and 2 more request(s) in ")
    time.sleep(1.2)
    assert len(_messages(caplog)) == 2  # and the timer has nothing left to say
