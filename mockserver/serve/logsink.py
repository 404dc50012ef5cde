"""A logging handler that formats and writes on its own thread, many lines per write.

`serve` logs one line per request. Formatting that line and writing it to stderr on
the event loop would cost every request a format and a syscall; here the loop only
queues the `LogRecord`, and one thread formats whatever has queued up and writes it
in one write. `flush()` (called by `logging.shutdown` at exit) waits until every line
queued before it is written. (How many request lines a second there are at most is the
endpoint's business: `mockserver.request_lines`.)
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import Any, TextIO

__all__ = ["BackgroundHandler", "log_to_stderr"]


class BackgroundHandler(logging.Handler):
    """Queue records; a daemon thread formats them and writes them to `stream`."""

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.stream = stream
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
        """Return once every record queued before this call is written."""
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
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = [self._line(item) for item in items if isinstance(item, logging.LogRecord)]
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except (OSError, ValueError):  # stderr closed or gone: nothing to tell
                    pass
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()

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
