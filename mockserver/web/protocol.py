"""uvicorn's httptools protocol with a bound on the request head.

httptools (the C parser `uvicorn[standard]` brings) has no limit of its own: a
client sending headers forever, a byte at a time or all at once, would grow the
server's memory without end (h11 has `max_incomplete_event_size`; httptools has
nothing like it). This subclass counts the head as it arrives and answers 431
with a problem body once it passes `MAX_HEAD_BYTES`, then closes the connection.

Counting is exact where the parser tells us (the URL fragments and each complete
header). A head still open at the end of a read counts every byte of that read
(unless a pipelined message ended in it: then the rest is counted by the next
read), so at most `MAX_HEAD_BYTES` plus one read is ever held for one head.
"""

from __future__ import annotations

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..problem import problem

__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]

MAX_HEAD_BYTES = 64 * 1024
"""The request line plus all headers; a real SDK's head is well under 2 KiB."""


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past the bound."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that answers 431 to a head over `MAX_HEAD_BYTES`."""

    head_limit = MAX_HEAD_BYTES
    _head_bytes = 0
    _in_head = False
    _began = False
    _ended = False

    def on_message_begin(self) -> None:
        self._head_bytes, self._in_head, self._began = 0, True, True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ended = True
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.head_limit:
            raise _HeadTooLarge

    def data_received(self, data: bytes) -> None:
        carried, before = self._in_head, self._head_bytes
        self._began = self._ended = False
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._send_431()
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if not self._in_head:
            return
        if carried and not self._began:  # the head was open before this read: all of it is head
            self._head_bytes = before + len(data)
        elif not self._ended:  # the head began in this read and no message ended in it
            self._head_bytes = max(self._head_bytes, len(data))
        if self._head_bytes > self.head_limit:
            self._send_431()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def _send_431(self) -> None:
        headers, body = problem(
            "head_too_large",
            431,
            f"the request head (request line and headers) is over {self.head_limit:,} bytes; "
            "send fewer or shorter headers",
        )
        lines = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in [*headers, ("content-length", str(len(body))), ("connection", "close")]:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        self._in_head = False
        self.transport.close()
