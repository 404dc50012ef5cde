"""Decoding bodies: limits, gzip, encodings and JSON strictness."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver import MAX_BODY_BYTES, DecodeError, decode_body
from mockserver.contract.decoding import loads


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


# The fast parser (msgspec) and the reference (`loads`, json.loads as decoding was before it) must
# give one answer: the same value, or an error with the reference's message.
def _reference(body: bytes) -> tuple[str, str]:
    if body.startswith(b"\xef\xbb\xbf"):
        return "error", "bom"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "error", f"the body is not valid UTF-8 (byte {exc.start})"
    if not text.strip():
        return "error", "the body is empty"

    try:
        return "ok", repr(loads(text))
    except RecursionError:
        return "error", "nests too deeply"
    except ValueError as exc:
        return "error", str(exc)


def _decoded(body: bytes) -> tuple[str, str]:
    try:
        return "ok", repr(decode_body(body, None).payload)
    except DecodeError as exc:
        return "error", exc.message


def _same(body: bytes) -> None:
    kind, answer = _decoded(body)
    ref_kind, ref_answer = _reference(body)
    assert kind == ref_kind, (body[:200], answer, ref_answer)
    if kind == "ok":
        assert answer == ref_answer  # repr: 1 and 1.0, 0.0 and -0.0 count as different
    else:
        assert ref_answer.split(":")[0] in answer or "BOM" in answer or "deeply" in answer


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=_json, ascii_only=st.booleans())
def test_fast_and_reference_parsers_agree_on_json(value: object, ascii_only: bool) -> None:
    _same(json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"))


@settings(max_examples=600, deadline=None)
@given(value=_json, data=st.data())
def test_fast_and_reference_parsers_agree_on_mutated_bodies(
    value: object, data: st.DataObject
) -> None:
    body = bytearray(json.dumps(value).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(
            st.sampled_from(
                [
                    b"\\ud800",
                    b"1e400",
                    b"NaN",
                    b"-Infinity",
                    b"\xff",
                    b"\xef\xbb\xbf",
                    b",",
                    b'"',
                    b"}",
                    b"]",
                    b"0" * 30,
                    b"\x01",
                    b" ",
                    b"\\",
                    b'{"a":1,"a":2}',
                    b"-0",
                    b"1.",
                ]
            )
        )
        if action == "insert":
            body[at:at] = piece
        elif action == "delete":
            del body[at : at + len(piece)]
        else:
            body[at : at + len(piece)] = piece
    _same(bytes(body))


@pytest.mark.parametrize(
    "body",
    [
        b'"\\ud800"',
        b"1e400",
        b"[NaN]",
        b"123456789012345678901234567890",
        b"-0",
        b'{"a":1,"a":2}',
        b"\xef\xbb\xbf{}",
        b"[" * 5000 + b"]" * 5000,
        b"  ",
        b'{"a":"\xff"}',
    ],
)
def test_fast_and_reference_parsers_agree_on_edges(body: bytes) -> None:
    _same(body)
