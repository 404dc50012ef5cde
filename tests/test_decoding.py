"""Decoding bodies: limits, gzip, encodings and JSON strictness."""

from __future__ import annotations

import gzip
import json

import pytest

from mockserver import MAX_BODY_BYTES, DecodeError, decode_body


def test_plain_json_object_decodes_and_keeps_its_bytes() -> None:
    body = b'{"account_id": "1", "visitors": []}'
    decoded = decode_body(body, None)
    assert decoded.payload == {"account_id": "1", "visitors": []}
    assert decoded.text == body


def test_gzip_body_is_decompressed() -> None:
    body = json.dumps({"a": "ü"}).encode()
    assert decode_body(gzip.compress(body), "gzip").payload == {"a": "ü"}
    assert decode_body(gzip.compress(body), "x-gzip").payload == {"a": "ü"}


def test_gzip_limit_applies_to_the_decompressed_size() -> None:
    bomb = gzip.compress(b"[" + b" " * (MAX_BODY_BYTES + 10) + b"]")
    assert len(bomb) < 10_000
    with pytest.raises(DecodeError) as info:
        decode_body(bomb, "gzip")
    assert info.value.too_large
    assert "decompressed body is over the 3,500,000-byte limit" in info.value.message


def test_gzip_just_under_the_limit_is_accepted() -> None:
    body = b'{"pad": "' + b"x" * (MAX_BODY_BYTES - 20) + b'"}'
    assert len(body) <= MAX_BODY_BYTES
    assert len(decode_body(gzip.compress(body), "gzip").payload["pad"]) == MAX_BODY_BYTES - 20


def test_raw_body_over_the_limit_is_too_large() -> None:
    with pytest.raises(DecodeError) as info:
        decode_body(b" " * (MAX_BODY_BYTES + 1), None)
    assert info.value.too_large


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"not gzip", "gzip", "not valid gzip"),
        (gzip.compress(b'{"a": 1}', mtime=0)[:-8], "gzip", "truncated"),
        (b"{}", "br", "Content-Encoding 'br' is not supported"),
        (b'\xef\xbb\xbf{"a": 1}', None, "byte order mark"),
        (b'{"a": "\xff"}', None, "not valid UTF-8 (byte 7)"),
        (b"", None, "the body is empty"),
        (b"   ", None, "the body is empty"),
        (b'{"a": NaN}', None, "NaN is not valid JSON"),
        (b'{"a": -Infinity}', None, "-Infinity is not valid JSON"),
        (b'{"a": 1', None, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, None, "nests too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", None, "not valid JSON"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_unreadable_bodies_say_what_to_do(body: bytes, encoding: str | None, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_body(body, encoding)
    assert message in info.value.message
    assert not info.value.too_large


def test_valid_json_that_is_not_an_object_still_decodes() -> None:
    assert decode_body(b"[1, 2]", None).payload == [1, 2]


def test_python_ascii_escapes_and_raw_utf8_decode_the_same() -> None:
    value = {"visitor_id": "usér-€"}
    escaped = json.dumps(value).encode()
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert decode_body(escaped, None).payload == decode_body(raw, None).payload == value
