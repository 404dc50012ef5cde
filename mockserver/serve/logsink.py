"""A logging handler that formats and writes on its own thread, many lines per write.

`serve` logs one line per request. Formatting that line and writing it to stderr on
the event loop would cost every request a format and a syscall; here the loop only
queues the `LogRecord`, and one thread formats whatever has queued up and writes it
in one write. `flush()` (called by `logging.shutdown` at exit) waits until every line
queued before it is written.

Under load, request lines are shown one by one up to `lines_per_second` in each
second; the rest of that second's are counted, by verdict, into one summary line
written when the second is over ("... and 6,912 more requests in that second: 6,912
accepted"). A terminal cannot be read at thousands of lines a second, and formatting
them was a sixth of the server's time per request (benchmarks/NOTES.md); the journal
keeps every request (`logx-mock events`). Other lines (warnings, errors) are always
written.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from ..endpoint import REQUEST_LOGGER

__all__ = ["LINES_PER_SECOND", "BackgroundHandler", "log_to_stderr"]

LINES_PER_SECOND = 50
"""Request lines shown one by one in any second; the rest are summed up."""


class BackgroundHandler(logging.Handler):
    """Queue records; a daemon thread formats them and writes them to `stream`."""

    def __init__(
        self,
        stream: TextIO,
        formatter: logging.Formatter,
        *,
        lines_per_second: int = LINES_PER_SECOND,
    ) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.stream = stream
        self.lines_per_second = lines_per_second
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._second = 0
        """The second (of `LogRecord.created`) the last request line was in."""
        self._shown = 0
        """Request lines shown in that second."""
        self._held: Counter[str] = Counter()
        """Request lines of that second not shown, by verdict."""
        self._thread = threading.Thread(target=self._drain, name="logx-log", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<BackgroundHandler {getattr(self.stream, 'name', self.stream)!r}>"

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the queue is thread-safe, and the writing thread is the only writer.
        if not self.filter(record):
            return False
        self._queue.put(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._queue.put(record)

    def flush(self) -> None:
        """Return once every record queued before this call is written (a summary of
        request lines held back included)."""
        if not self._thread.is_alive():
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout=10)

    def close(self) -> None:
        # Flush, but keep the thread: logging.config.dictConfig (which uvicorn calls) closes
        # every existing handler and, like a StreamHandler, this one must keep working after.
        self.flush()
        super().close()

    def _drain(self) -> None:
        while True:
            items = [self._next()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            flushing = False
            for item in items:
                if isinstance(item, logging.LogRecord):
                    lines.extend(self._lines(item))
                elif isinstance(item, threading.Event):
                    flushing = True
            if self._held and (flushing or time.time() >= self._second + 1):
                lines.append(self._summary())
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except (OSError, ValueError):  # stderr closed or gone: nothing to tell
                    pass
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()

    def _next(self) -> Any:
        """The next item; while request lines are held back, no later than the end of
        their second (so their summary comes out even if nothing else is logged)."""
        if not self._held:
            return self._queue.get()
        try:
            return self._queue.get(timeout=max(0.0, self._second + 1 - time.time()))
        except queue.Empty:
            return None

    def _lines(self, record: logging.LogRecord) -> list[str]:
        if record.name != REQUEST_LOGGER:
            return [self._line(record)]
        lines = []
        second = int(record.created)
        if second != self._second:
            if self._held:
                lines.append(self._summary())
            self._second, self._shown = second, 0
        if self._shown < self.lines_per_second:
            self._shown += 1
            lines.append(self._line(record))
        else:
            self._held[getattr(record, "verdict", "other")] += 1
        return lines

    def _summary(self) -> str:
        """One line for the request lines of `_second` not shown, and forget them."""
        held, self._held = self._held, Counter()
        count = sum(held.values())
        verdicts = ", ".join(f"{n:,} {verdict}" for verdict, n in held.most_common())
        stamp = time.strftime("%H:%M:%S", time.localtime(self._second))
        return (
            f"{stamp} ... and {count:,} more request(s) in that second ({verdicts}): "
            f"one line each is shown for the first {self.lines_per_second} a second; "
            "`logx-mock events` lists every one\n"
        )

    def _line(self, record: logging.LogRecord) -> str:
        try:
            return self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return ""


def log_to_stderr() -> None:
    """One readable line per request on stderr (at most `LINES_PER_SECOND` a second, then a
    summary), written off the event loop (`serve` and each of its worker processes call it).

    The serve process logs only our lines, which name no thread, process or source line:
    so each record skips collecting them, as the logging HOWTO's "Optimization" section
    describes (a frame walk per request was most of the log's cost on the event loop).
    """
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    logger = logging.getLogger("logx_mock")
    if not any(getattr(h, "_logx_cli", False) for h in logger.handlers):
        formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        handler = BackgroundHandler(sys.stderr, formatter)
        handler._logx_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # psycopg_pool warns at every reconnection attempt while a database is away; our own
    # lines say so once per failed write ("journal write failed", "answering 503").
    logging.getLogger("psycopg").setLevel(logging.ERROR)
