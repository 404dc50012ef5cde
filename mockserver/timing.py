"""Time in the fault plan: durations, latency distributions, and cancellable waits."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import threading
from typing import Any

__all__ = ["Delay", "DurationError", "Waiter", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


class DurationError(ValueError):
    """A duration that cannot be read; the message shows how to write one."""


def parse_duration(text: str | float | int) -> float:
    """`200ms`, `1.5s` or a bare number of seconds, as seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if match is None:
        raise DurationError(f"{text!r} is not a duration; write e.g. 200ms or 1.5s")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


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
                    f"{text!r}: write lognormal:MEDIAN:SIGMA, e.g. lognormal:100ms:.5"
                )
            return cls("lognormal", parse_duration(parts[1]), sigma=float(parts[2]))
        if "-" in text:
            low, high = (parse_duration(p) for p in text.split("-", 1))
            if high < low:
                raise DurationError(f"{text!r}: the upper bound is below the lower one")
            return cls("uniform", low, high)
        return cls("fixed", parse_duration(spec))

    def sample(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "lognormal":
            return float(rng.lognormvariate(math.log(max(self.low, 1e-6)), self.sigma))
        return self.low

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"{self.low * 1000:g}ms-{self.high * 1000:g}ms"
        if self.kind == "lognormal":
            return f"lognormal:{self.low * 1000:g}ms:{self.sigma:g}"
        return f"{self.low * 1000:g}ms"


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
