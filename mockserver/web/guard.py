"""Who may use the admin surface (`/_mock`: the API and the page).

Three checks, in pure ASGI in front of the admin routes:

- **Host.** A browser page on another site can reach a local server through DNS
  rebinding (its own name resolving to 127.0.0.1); it then sends its own name
  as `Host`. So `/_mock` answers only a `Host` that is an IP literal,
  `localhost`, or a name given with `--allow-host`.
- **Site.** A page on any site can send a "simple" POST (text/plain, a form) to
  a local server without a preflight, and make it fetch anything. So a request
  whose `Sec-Fetch-Site` or `Origin` says another site's page sent it is refused
  (`cross_site`); clients that are not browsers send neither.
- **Token.** With `--admin-token`, every `/_mock` request needs
  `Authorization: Bearer TOKEN` or the `logx_admin` cookie. Opening
  `/_mock/?token=TOKEN` once sets that cookie for the page.

`/v1/events` is never guarded: like the real endpoint, it takes batches from anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError
from ..model import Outcome
from ..problem import problem
from ..violations import shown
from .wire import send_outcome

__all__ = [
    "ADMIN_PREFIX",
    "COOKIE",
    "AdminGuard",
    "GuardConfig",
    "cookie_value",
    "cross_site",
    "is_loopback",
    "token_digest",
    "token_presented",
]

ADMIN_PREFIX = "/_mock"
"""Where the admin surface lives: the admin API, the page and its assets."""
COOKIE = "logx_admin"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=-]+")
"""What a token may hold: it travels in an `Authorization` header, a cookie and a URL."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8080
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class GuardConfig:
    """The admin surface's protection; keyword-only, checked on construction.

    `token` is checked and kept only as its SHA-256 (`token_sha256`), which is also what
    `serve --workers` hands its workers: the token itself travels in no environment, and a
    digest read from one opens nothing (a token is needed to match it).
    """

    token: str | None = field(default=None, repr=False)
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    token_sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token is None:
            return
        if len(self.token) < 8:
            raise ConfigError(
                "must be at least 8 characters; use a random string", setting="admin token"
            )
        if not _TOKEN_CHARS.fullmatch(self.token):
            raise ConfigError(
                "may hold only ASCII letters, digits and - . _ ~ + / = (it is sent in a header, a "
                "cookie and a URL); use e.g. the output of `openssl rand -hex 16`",
                setting="admin token",
            )
        object.__setattr__(self, "token_sha256", token_digest(self.token))

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = _host_name(host)
        return name == "localhost" or _is_ip(name) or name in self.allowed_hosts


class AdminGuard:
    """ASGI middleware that applies a `GuardConfig` before the admin app."""

    def __init__(self, app: ASGIApp, config: GuardConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if not self.config.host_allowed(host):
            await _deny(
                send,
                403,
                f"Host {shown(host)} is not this server's name; open it as "
                "127.0.0.1 or localhost, or start it with --allow-host NAME",
            )
            return
        refused = cross_site(scope, headers)
        if refused is not None:
            await _deny(
                send,
                403,
                f"a cross-site request to the admin API is refused ({refused}): {ADMIN_PREFIX} "
                "answers its own page and clients that are not browsers (curl, scripts, tests)",
            )
            return
        digest = self.config.token_sha256
        if digest is None or token_presented(headers, digest):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        presented = query.get("token", [""])[0]
        if presented and _same(presented, digest):
            await _set_cookie_and_return(send, scope, presented)
            return
        await _deny(
            send,
            401,
            "the admin API needs the admin token: send "
            f"'Authorization: Bearer TOKEN', or open {ADMIN_PREFIX}/?token=TOKEN once",
        )


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def cross_site(scope: Scope, headers: dict[str, str]) -> str | None:
    """Why a request must be refused as sent by another site's page, or None.

    Browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`); other clients say
    nothing and pass. A request that changes state must come from this origin (the page's
    own buttons), as Django's CSRF check and Mailpit's API require; a page on any site can
    send "simple" POSTs (text/plain, forms) without a preflight. A read must not be sent by
    another site's page either (its answer is unreadable there, but the work is done),
    except a top-level navigation (a link to the page)."""
    site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if scope["method"] in _SAFE_METHODS:
        if site in ("cross-site", "same-site") and headers.get("sec-fetch-mode") != "navigate":
            return f"Sec-Fetch-Site: {site}"
    elif site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {site}"
    if origin is not None and not _same_origin(origin, scope, headers.get("host", "")):
        return f"Origin: {shown(origin)}"
    return None


def _same_origin(origin: str, scope: Scope, host: str) -> bool:
    """Whether `Origin` names this server as the client reached it (scheme, host, port)."""
    scheme, sep, netloc = origin.strip().lower().partition("://")
    ours = str(scope.get("scheme", "http"))
    if not sep or scheme != ours:
        return False
    return _with_port(netloc, scheme) == _with_port(host.strip().lower(), ours)


def _with_port(netloc: str, scheme: str) -> str:
    bracket = netloc.rfind("]")
    has_port = ":" in netloc[bracket + 1 :]
    return netloc if has_port else f"{netloc}:{_DEFAULT_PORTS.get(scheme, '')}"


def token_digest(token: str) -> str:
    """The SHA-256 of a token (any text: a presented one may hold anything), in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _same(presented: str, digest: str) -> bool:
    """Whether `presented` is the token of `digest`, compared in constant time."""
    return hmac.compare_digest(token_digest(presented), digest)


def token_presented(headers: dict[str, str], digest: str) -> bool:
    """Whether the request carries the token of `digest`: as a bearer token, or the cookie
    the page's `?token=` set."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), digest):
        return True
    cookie = cookie_value(headers.get("cookie", ""), COOKIE)
    return cookie is not None and _same(cookie, digest)


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie `name`, by one linear split. (`http.cookies` is not used: on
    Python before 3.11.10 it is quadratic in backslashes, CVE-2024-7592, and a 64 KB Cookie
    header held the loop 11 s.)"""
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


async def _deny(send: Send, status: int, detail: str) -> None:
    headers, body = problem("denied", status, detail)
    if status == 401:
        headers.append(("www-authenticate", 'Bearer realm="logx-mock"'))
    await send_outcome(send, Outcome(status, headers, body))


async def _set_cookie_and_return(send: Send, scope: Scope, token: str) -> None:
    cookie = f"{COOKIE}={token}; Path={ADMIN_PREFIX}; HttpOnly; SameSite=Strict"
    location = scope.get("root_path", "") + scope["path"]
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"set-cookie", cookie.encode("latin-1")),
                (b"location", location.encode("latin-1")),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
