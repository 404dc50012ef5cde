"""The case corpus: data files in `cases/`, turned into requests.

Each case file holds a list of cases. A case's `request` is built from a base
payload in `cases/payloads/` with `set`/`delete` changes at dotted paths, or
from raw `text`/`base64`, or from a named generator for bodies too large or
too deep to keep as files. See `cases/README.md` for the format.
"""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CASES", "Case", "Request", "load_cases", "near_limit_body"]

CASES_DIR = Path(__file__).parent / "cases"
MAX_BODY_BYTES = 3_500_000


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Case:
    """One case: a request and what it must get, in strict and permissive mode."""

    id: str
    about: str
    spec: dict[str, Any]
    expect: dict[str, Any]
    uses_journal: bool = field(init=False)

    def __post_init__(self) -> None:
        self.uses_journal = (
            bool(
                {"verdict", "errors", "warnings", "events", "client_ip", "unknown_fields", "keys"}
                & set(self.expect)
            )
            or self.expect.get("journaled") is False
        )

    def request(self, strict: bool) -> Request:
        spec = self.spec
        headers: dict[str, str] = {}
        body = _body(spec)
        if body and "text" not in spec and "base64" not in spec:
            headers["content-type"] = "application/json"
        if spec.get("gzip"):
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        for name, value in spec.get("headers", {}).items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        if strict:
            headers["x-optimizely-strict"] = "true"
        return Request(spec.get("method", "POST"), spec.get("path", "/v1/events"), headers, body)

    def datafile(self) -> bytes | None:
        """The datafile the door must check this case against (`cases/datafiles/`), if any."""
        name = self.spec.get("datafile")
        return None if name is None else (CASES_DIR / "datafiles" / f"{name}.json").read_bytes()

    def status(self, strict: bool) -> int:
        return int(self.expect["status"]["strict" if strict else "permissive"])


def _payload(name: str) -> Any:
    return json.loads((CASES_DIR / "payloads" / f"{name}.json").read_text())


def _walk(node: Any, dotted: str) -> tuple[Any, Any]:
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, int(last) if isinstance(node, list) else last


def _body(spec: dict[str, Any]) -> bytes:
    if "generate" in spec:
        return GENERATORS[spec["generate"]]()
    if "text" in spec:
        return str(spec["text"]).encode()
    if "base64" in spec:
        return base64.b64decode(spec["base64"])
    if "base" not in spec:
        return b""
    payload = copy.deepcopy(_payload(spec["base"]))
    for dotted, value in spec.get("set", {}).items():
        parent, key = _walk(payload, dotted)
        parent[key] = value
    for dotted in spec.get("delete", []):
        parent, key = _walk(payload, dotted)
        del parent[key]
    if spec.get("duplicate_visitor"):
        payload["visitors"].append(copy.deepcopy(payload["visitors"][0]))
    encoding = spec.get("encoding", "default")
    if encoding == "compact-utf8":
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return json.dumps(payload).encode()  # Python's ASCII escapes with spaces


def near_limit_body(uuid_prefix: str = "uuid-") -> bytes:
    """A batch of SDK impressions just under 3.5 MB, each event with its own uuid
    (`uuid_prefix` + a number). Shared with the benchmark and the server tests."""
    batch = _payload("python-sdk-decide-impression")
    visitor = batch["visitors"][0]
    batch["visitors"] = []
    size, i = 0, 0
    while True:
        item = copy.deepcopy(visitor)
        item["visitor_id"] = f"visitor-{i:07d}"
        item["snapshots"][0]["events"][0]["uuid"] = f"{uuid_prefix}{i:07d}"
        piece = len(json.dumps(item)) + 2
        if size + piece > MAX_BODY_BYTES - 2000:
            break
        batch["visitors"].append(item)
        size, i = size + piece, i + 1
    return json.dumps(batch).encode()


GENERATORS = {
    name: functools.cache(make)
    for name, make in {
        "near_limit": near_limit_body,
        "over_limit": lambda: b'{"pad": "' + b"x" * (MAX_BODY_BYTES - 10) + b'"}',
        "gzip_bomb": lambda: gzip.compress(b'{"pad": "' + b" " * (20 * MAX_BODY_BYTES) + b'"}'),
        "deep_nesting": lambda: b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    }.items()
}


def load_cases() -> list[Case]:
    """Every case of every file, with ids `file/name`."""
    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        for item in json.loads(path.read_text()):
            cases.append(
                Case(f"{path.stem}/{item['name']}", item["about"], item["request"], item["expect"])
            )
    return cases


CASES = load_cases()
