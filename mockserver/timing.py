"""Time in the fault plan: durations, latency distributions, and cancellable waits."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import threading
from typing import Any

from .errors import DurationError
from .violations import shown

__all__ = ["Delay", "DurationError", "Waiter", "parse_duration"]

# One number, nothing optional beside it: the unit and the spaces are stripped first, so
# the pattern cannot backtrack (the old `\s*(\d+...)\s*(ms|s)?\s*$` took 19.6 s on
# "1" + 64,000 spaces + "x").
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_DURATION = 3600.0
"""The longest delay, hang or interval a fault may ask for (an hour: every client gives up
long before)."""
MAX_SIGMA = 10.0


def parse_duration(text: str | float | int) -> float:
    """`200ms`, `1.5s` or a bare number of seconds, as seconds (0 to `MAX_DURATION`).

    Linear in the length of `text`, whatever it holds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return _bounded(float(text), text)
    raw = str(text).strip()
    number, scale = raw, 1.0
    if raw.endswith("ms"):
        number, scale = raw[:-2].rstrip(), 0.001
    elif raw.endswith("s"):
        number = raw[:-1].rstrip()
    if not _NUMBER.fullmatch(number):
        raise DurationError(f"{shown(text)} is not a duration; write e.g. 200ms or 1.5s")
    return _bounded(float(number) * scale, text)


def _bounded(seconds: float, text: object) -> float:
    if not 0 <= seconds <= MAX_DURATION:  # also NaN and infinity
        raise DurationError(
            f"{shown(text)} is not a duration from 0 to {MAX_DURATION:g}s; write e.g. 200ms"
        )
    return seconds


@dataclasses.dataclass(frozen=True)
class Delay:
    """Latency before the answer: fixed, uniform between two bounds, or lognormal."""

    kind: str
    low: float
    high: float = 0.0
    sigma: float = 0.0

    @classmethod
    def parse(cls, spec: Any) -> Delay:
        """`200ms`; `100ms-300ms` (uniform); `lognormal:100ms:0.5` (median and sigma)."""
        text = str(spec).strip()
        if text.startswith("lognormal:"):
            parts = text.split(":")
            if len(parts) != 3:
                raise DurationError(
                    f"{shown(text)}: write lognormal:MEDIAN:SIGMA, e.g. lognormal:100ms:.5"
                )
            return cls("lognormal", parse_duration(parts[1]), sigma=_sigma(parts[2]))
        if "-" in text:
            low, high = (parse_duration(p) for p in text.split("-", 1))
            if high < low:
                raise DurationError(f"{shown(text)}: the upper bound is below the lower one")
            return cls("uniform", low, high)
        return cls("fixed", parse_duration(spec))

    def sample(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "lognormal":
            drawn = rng.lognormvariate(math.log(max(self.low, 1e-6)), self.sigma)
            return min(float(drawn), MAX_DURATION)
        return self.low

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"{self.low * 1000:g}ms-{self.high * 1000:g}ms"
        if self.kind == "lognormal":
            return f"lognormal:{self.low * 1000:g}ms:{self.sigma:g}"
        return f"{self.low * 1000:g}ms"


def _sigma(text: str) -> float:
    try:
        sigma = float(text)
    except ValueError:
        sigma = math.nan
    if not 0 <= sigma <= MAX_SIGMA:
        raise DurationError(
            f"lognormal sigma {shown(text)} is not a number from 0 to {MAX_SIGMA:g}; e.g. 0.5"
        )
    return sigma


class Waiter:
    """A delay that the plan can cut short from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._wakers: list[Any] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            for loop, event in self._wakers:
                loop.call_soon_threadsafe(event.set)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the full time passed, False if cancelled."""
        return not self._event.wait(seconds)

    async def wait_async(self, seconds: float) -> bool:
        """The same, without blocking the event loop."""
        event = asyncio.Event()
        with self._lock:
            if self._event.is_set():
                return False
            self._wakers.append((asyncio.get_running_loop(), event))
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False
