"""From body bytes to a decoded JSON value, within the 3.5 MB limit.

Decoding is strict where the real endpoint's parser would be: UTF-8 only (a
BOM is refused), no `NaN`/`Infinity`, and a gzip body (`Content-Encoding:
gzip`) is held to the limit *after* decompression, so a gzip bomb costs at most
the limit in memory.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import DecodeError

__all__ = [
    "MAX_BODY_BYTES",
    "DecodeError",
    "Decoded",
    "decode_body",
    "inflate",
    "loads",
    "parse_json",
    "plain_body",
]

MAX_BODY_BYTES = 3_500_000
"""3.5 MB, read as decimal megabytes: the stricter reading of Optimizely's limit."""


_FAST = msgspec.json.Decoder()
"""msgspec parses in C, about 5x `json.loads`, with exact integers. It accepts a subset
of what `json.loads` accepts here (it refuses lone surrogate escapes, `1e400`, NaN), and
where both accept they give the same value (tests/test_decoding.py checks with
Hypothesis). So it goes first, and whatever it refuses is decided by the `json.loads`
path: its value, or its error message."""


@dataclass
class Decoded:
    """A body that parsed: its JSON value and the (decompressed) bytes it came from."""

    payload: Any
    text: bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send a number or null")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else f"{text[:30]}... ({len(text):,} characters)"
        raise ValueError(f"the number {shown} is beyond a 64-bit float; send a smaller number")
    return value


def loads(text: str | bytes) -> Any:
    """`json.loads` that refuses `NaN`, `Infinity` and numbers that overflow to infinity
    (`1e400`): none of them has a JSON spelling to send back, so nothing that decodes can
    break an answer later."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip `body`, refusing to produce more than `limit` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError(
            f"Content-Encoding is gzip but the body is not valid gzip ({exc}); "
            "send the JSON uncompressed or gzip it whole"
        ) from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise DecodeError(
            f"the decompressed body is over the {limit:,}-byte limit; split the batch",
            too_large=True,
        )
    if not inflater.eof:
        raise DecodeError("the gzip body is truncated; send the whole gzip stream")
    return out


def decode_body(body: bytes, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> Decoded:
    """Decompress (when asked) and parse `body`; raises DecodeError with a fix-it message."""
    text = plain_body(body, content_encoding, limit)
    return Decoded(payload=parse_json(text), text=text)


def plain_body(body: bytes, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """`body` within the limit, decompressed when its `Content-Encoding` says gzip: the
    bytes `parse_json` (or the fast path's typed decoder) reads."""
    if len(body) > limit:
        raise DecodeError(
            f"the body is over the {limit:,}-byte limit; split the batch", too_large=True
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return inflate(body, limit)
    if encoding != "identity":
        raise DecodeError(
            f"Content-Encoding {content_encoding!r} is not supported; send identity or gzip"
        )
    return body


def parse_json(body: bytes) -> Any:
    """The JSON value of `body` (plain bytes); raises DecodeError with a fix-it message."""
    try:
        return _FAST.decode(body)
    except Exception:  # refused: json.loads below decides, and says what is wrong
        pass
    if body.startswith(b"\xef\xbb\xbf"):
        raise DecodeError("the body starts with a UTF-8 byte order mark; send JSON without a BOM")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"the body is not valid UTF-8 (byte {exc.start}); encode the JSON as UTF-8"
        ) from exc
    if not text.strip():
        raise DecodeError("the body is empty; send one JSON object")
    try:
        return loads(text)
    except RecursionError as exc:
        raise DecodeError("the body nests too deeply to parse; flatten it") from exc
    except ValueError as exc:
        raise DecodeError(f"the body is not valid JSON: {exc}") from exc
