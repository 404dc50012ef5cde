"""A journal with every kind of request in it, sent over a real socket: what the export,
import, replay and check tests read back."""

from __future__ import annotations

import gzip
import json

import requests
from helpers import conversion, impression

from mockserver import ThreadedServer

JSON = {"content-type": "application/json"}


def post(url: str, body: bytes, **headers: str) -> int:
    return requests.post(url, data=body, headers={**JSON, **headers}, timeout=10).status_code


def fill(server: ThreadedServer) -> dict[str, int]:
    """Send one request of each kind to `server`; the status each got, by name."""
    url = server.events_url
    repeated = json.dumps(impression("dup-visitor")).encode()
    sent = {
        "accepted": post(url, json.dumps(impression("alice")).encode()),
        "conversion": post(url, json.dumps(conversion("purchase", "alice")).encode()),
        "first": post(url, repeated),
        "duplicate": post(url, repeated),
        "early": post(url, json.dumps(conversion("signup", "bob")).encode()),
        "rejected": post(url, json.dumps({**impression("carol"), "account_id": 5}).encode()),
        "strict": post(
            url, json.dumps({"visitors": []}).encode(), **{"x-optimizely-strict": "true"}
        ),
        "malformed": post(url, b'{"visitors": [1,'),
        "not_utf8": post(url, b"\xff\xfe{}"),
        "array": post(url, b"[1, 2]"),
        "gzip": post(
            url,
            gzip.compress(json.dumps(impression("dave")).encode()),
            **{"content-encoding": "gzip"},
        ),
        "surrogate": post(url, json.dumps(impression("\ud800-eve")).encode()),
        "too_large": post(url, b" " * 3_600_000),
    }
    server.endpoint.faults.add(status=503, times=1)
    sent["faulted"] = post(url, json.dumps(impression("frank")).encode())
    return sent
