"""What a client in this process lives through under a fault, whatever its library.

In process there is no socket: a door waits as long as the client would have waited
on the wire, then either hands over the answer or raises the exception that client's
library raises for what would have happened. This module computes the first part once
(`timeline`) and does the waiting (`wait_out`); each door (httpx, requests) maps the
`Ending` to its own library's exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mockserver import FaultPlan, Outcome

__all__ = ["Ending", "Timeline", "timeline", "wait_out", "wait_out_async"]


class Ending(enum.Enum):
    """How the exchange ends when no answer is read."""

    RESET = "reset"
    """ECONNRESET before the answer: the server aborted the connection."""
    CLOSE = "close"
    """The server closed the connection without answering (also: a hang past `hang_max`)."""
    TIMEOUT = "timeout"
    """The client's read timeout passed while it waited for the answer's head."""
    BODY_TIMEOUT = "body_timeout"
    """The head arrived, then the read timeout passed between two body bytes (dribble)."""


@dataclass(frozen=True)
class Timeline:
    """Wait `delay`, then `wait`, then end with `ending` (None: the answer is read)."""

    delay: float
    wait: float
    ending: Ending | None
    read_timeout: float | None


def timeline(outcome: Outcome, read_timeout: float | None) -> Timeline:
    """The timeline of a faulted outcome for a client with this read timeout."""
    fault = outcome.fault
    assert fault is not None
    wait, ending = 0.0, None
    if fault.kind == "reset":
        ending = Ending.RESET
    elif fault.kind == "close":
        ending = Ending.CLOSE
    elif fault.kind == "hang":
        if read_timeout is not None and read_timeout < fault.hang_max:
            wait, ending = read_timeout, Ending.TIMEOUT
        else:
            wait, ending = fault.hang_max, Ending.CLOSE
    elif fault.kind == "dribble":
        # The read timeout applies to each read, not to the whole body.
        if read_timeout is not None and fault.dribble_interval > read_timeout:
            wait, ending = read_timeout, Ending.BODY_TIMEOUT
        else:
            wait = fault.dribble_interval * len(outcome.body)
    return Timeline(fault.delay, wait, ending, read_timeout)


def wait_out(plan: FaultPlan, line: Timeline) -> None:
    """Sleep through the timeline; clearing the plan cuts the waits short."""
    waiter = plan.waiter()
    try:
        if line.delay:
            waiter.wait(line.delay)
        if line.wait and not waiter.cancelled:
            waiter.wait(line.wait)
    finally:
        plan.release(waiter)


async def wait_out_async(plan: FaultPlan, line: Timeline) -> None:
    """`wait_out` for async clients: the event loop keeps running."""
    waiter = plan.waiter()
    try:
        if line.delay:
            await waiter.wait_async(line.delay)
        if line.wait and not waiter.cancelled:
            await waiter.wait_async(line.wait)
    finally:
        plan.release(waiter)
