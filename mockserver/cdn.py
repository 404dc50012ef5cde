"""The CDN's datafile routes, answered by the core: what an SDK fetches before it decides.

`GET /datafiles/{sdk_key}.json` (the SDKs' default, on cdn.optimizely.com) and
`GET /datafiles/auth/{sdk_key}.json` (with `datafile_access_token`, on
config.optimizely.com) answer the loaded datafile whose `sdkKey` is that key, exactly
as it was given. Every door reaches them through `Endpoint.handle`, on any host, so a
client's `url_template` may point at a running mock too.

Polling: the Python SDK (`PollingConfigManager`) and the JavaScript SDK send
`If-Modified-Since` with the `Last-Modified` they were last given, and keep their
config on a 304. `ETag`/`If-None-Match` is answered as well, for other clients.
A key that no loaded datafile has gets 403, as the CDN answers for an unknown key, and a
warning on the `logx_mock` logger naming the keys served (the SDK itself only logs "403").
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime

from .contract.datafile import Datafile, Datafiles
from .model import CoreRequest, Outcome
from .problem import problem

__all__ = ["DATAFILES_PREFIX", "DATAFILE_HOSTS", "DatafileCdn", "datafile_path"]

log = logging.getLogger("logx_mock")

DATAFILE_HOSTS = ("cdn.optimizely.com", "config.optimizely.com")
"""The hosts the SDKs fetch datafiles from (plain, and with an access token)."""
DATAFILES_PREFIX = "/datafiles/"
_AUTH = "auth/"
_SUFFIX = ".json"
_CORS = [("access-control-allow-origin", "*")]
_HOW = (
    "give the datafile to logx-mock (pytest: logx(datafile=...) or the logx_datafile ini key; "
    "serve --datafile FILE; or POST it to /_mock/datafiles)"
)


def datafile_path(sdk_key: str, *, authenticated: bool = False) -> str:
    """The path an SDK fetches `sdk_key`'s datafile from."""
    return f"{DATAFILES_PREFIX}{_AUTH if authenticated else ''}{sdk_key}{_SUFFIX}"


def _served_key(path: str) -> tuple[str | None, bool]:
    """(sdk key, authenticated) of a datafile path; the key is None when the path names no
    datafile (a folder, another file name)."""
    rest = path[len(DATAFILES_PREFIX) :]
    authenticated = rest.startswith(_AUTH)
    if authenticated:
        rest = rest[len(_AUTH) :]
    key = rest[: -len(_SUFFIX)] if rest.endswith(_SUFFIX) else ""
    return (key if key and "/" not in key else None), authenticated


def _bearer(request: CoreRequest) -> bool:
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _denied(detail: str) -> Outcome:
    headers, body = problem("denied_datafile", 403, detail)
    return Outcome(403, headers + _CORS, body)


def _not_modified(request: CoreRequest, etag: str, stamp: int) -> bool:
    """RFC 9110: `If-None-Match` decides when present; else `If-Modified-Since`."""
    tags = request.header("if-none-match")
    if tags is not None:
        wanted = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return "*" in wanted or etag in wanted
    since = request.header("if-modified-since")
    if since is None:
        return False
    try:
        return stamp <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):  # an unreadable date is ignored, as RFC 9110 says
        return False


class DatafileCdn:
    """Answers the datafile routes, and remembers when each key's content last changed.

    `Last-Modified` is the file's modification time (so `--workers` agree), or for a
    datafile given as text the second its content was first served. A changed datafile
    (an upload, a watched file) gets a later one, at least a second after the previous,
    so a poller holding the old date always gets the new content.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, int]] = {}
        """sdk key -> (ETag of the content last served, its Last-Modified as epoch seconds)"""

    def __repr__(self) -> str:
        return f"<DatafileCdn {len(self._seen)} key(s) served>"

    def _stamp(self, datafile: Datafile, etag: str) -> int:
        key = datafile.sdk_key
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen[0] == etag:
                return seen[1]
            changed = int(datafile.modified or self._clock())
            stamp = max(changed, seen[1] + 1) if seen is not None else changed
            self._seen[key] = (etag, stamp)
            return stamp

    def answer(self, request: CoreRequest, datafiles: Datafiles) -> Outcome:
        """The CDN's answer to a request under `/datafiles/`."""
        if request.method != "GET":
            headers, body = problem(
                "method", 405, f"{request.method} is not allowed; datafiles are fetched with GET"
            )
            return Outcome(405, [*headers, ("allow", "GET"), *_CORS], body)
        key, authenticated = _served_key(request.path)
        if key is None:
            return _denied(f"{request.path} is not a datafile; SDKs fetch {datafile_path('KEY')}")
        if authenticated and not _bearer(request):
            return _denied(
                f"{request.path} needs 'Authorization: Bearer <datafile access token>' (any "
                "token is accepted here); without a token, fetch "
                f"{datafile_path(key)} instead"
            )
        datafile = _find(datafiles, key)
        if datafile is None:
            served = ", ".join(repr(f.sdk_key) for f in datafiles.files if f.sdk_key) or "none"
            detail = f"no datafile with sdkKey {key!r} is loaded (served: {served}); {_HOW}"
            # A warning: in a pytest failure report it sits next to the SDK's own error.
            log.warning("GET %s 403: %s", request.path, detail)
            return _denied(detail)
        return self._serve(request, datafile)

    def _serve(self, request: CoreRequest, datafile: Datafile) -> Outcome:
        etag = f'"{hashlib.sha256(datafile.text).hexdigest()[:32]}"'
        stamp = self._stamp(datafile, etag)
        headers = [("etag", etag), ("last-modified", formatdate(stamp, usegmt=True)), *_CORS]
        if _not_modified(request, etag, stamp):
            log.info("GET %s 304: %s not modified", request.path, datafile.source)
            return Outcome(304, headers)
        log.info("GET %s 200: %s, revision %s", request.path, datafile.source, datafile.revision)
        return Outcome(200, [("content-type", "application/json"), *headers], datafile.text)


def _find(datafiles: Datafiles, key: str) -> Datafile | None:
    """The datafile served under `key`: the last one given wins (a newer upload)."""
    return next((f for f in reversed(datafiles.files) if f.sdk_key == key), None)
