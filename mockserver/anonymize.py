"""Which client address a request came from, and what of it may be stored.

Optimizely truncates the stored IP when `anonymize_ip` is true (the default):
IPv4 loses its last octet, IPv6 its low 64 bits. The full address is then kept
nowhere, so the mock also scrubs the forwarding headers it journals.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import ConfigError

__all__ = [
    "ADDRESS_HEADERS",
    "ClientAddress",
    "TrustedProxies",
    "anonymize_ip",
    "parse_ip",
    "scrub_headers",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ADDRESS_HEADERS = frozenset(
    {
        # The de-facto and standard forwarding headers.
        "x-forwarded-for",
        "x-original-forwarded-for",
        "forwarded",
        "forwarded-for",
        "x-forwarded",
        "x-real-ip",
        "via",
        # One client address each, set by CDNs, load balancers and proxies.
        "cf-connecting-ip",
        "cf-connecting-ipv6",
        "true-client-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "client-ip",
        "x-envoy-external-address",
        "x-azure-clientip",
        "x-azure-socketip",
        "x-appengine-user-ip",
        "proxy-client-ip",
        "wl-proxy-client-ip",
        "x-proxyuser-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
    }
)
"""Every header known to carry a client's address: with anonymization on, each is journaled
with its addresses truncated (and anything else in it that could name a client redacted)."""
_REDACTED = "[redacted]"
_MAX_HOPS = 64
"""How many `X-Forwarded-For` hops are looked at from the right: past that many trusted
proxies, the chain is not believed."""


def parse_ip(text: str | None) -> IPAddress | None:
    """Parse an address, treating IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4."""
    if not text or len(text) > 100:  # no address is that long: do not parse garbage
        return None
    candidate = text.strip().strip('"')
    if candidate.startswith("[") and "]" in candidate:
        candidate = candidate[1 : candidate.index("]")]  # [v6] or [v6]:port
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]  # v4:port
    candidate = candidate.split("%", 1)[0]
    if not candidate or candidate.strip("0123456789abcdefABCDEF.:"):
        return None  # not made of an address's characters: skip ipaddress's slow refusal
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def anonymize_ip(address: IPAddress) -> str:
    """IPv4: last octet set to 0. IPv6: the low 64 bits set to 0."""
    prefix = 24 if address.version == 4 else 64
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)


@dataclass(frozen=True)
class TrustedProxies:
    """The peers whose `X-Forwarded-For` is believed (`--trust-proxy CIDR`)."""

    networks: tuple[Network, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> TrustedProxies:
        """Build from CIDR strings; raises ConfigError naming the bad one."""
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(
                    f"{cidr!r} is not a CIDR; use e.g. 10.0.0.0/8 or 127.0.0.1/32",
                    setting="trusted proxy",
                ) from exc
        return cls(tuple(networks))

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in net for net in self.networks)


@dataclass(frozen=True)
class ClientAddress:
    """The address a request is attributed to, and the form of it that is stored."""

    address: IPAddress | None
    stored: str | None
    anonymized: bool

    @classmethod
    def resolve(
        cls,
        peer: str | None,
        forwarded_for: str | None,
        trusted: TrustedProxies,
        *,
        anonymize: bool,
    ) -> ClientAddress:
        """The TCP peer, or the client named in `X-Forwarded-For` when the peer is trusted.

        The right-most untrusted hop is the client: the hops to its right were added by
        proxies we trust. With several `X-Forwarded-For` lines, pass them joined with commas
        in arrival order (the last line is the one the nearest proxy wrote).
        """
        address = _peer(peer)
        if forwarded_for and trusted.trusts(address):
            address = _forwarded_client(address, forwarded_for, trusted)
        return _stored(address, anonymize)


@functools.lru_cache(maxsize=4096)  # peers repeat; a peer is a short string from the socket
def _peer(peer: str | None) -> IPAddress | None:
    return parse_ip(peer)


def _forwarded_client(
    address: IPAddress | None, forwarded_for: str, trusted: TrustedProxies
) -> IPAddress | None:
    """Walk the hops from the right while they are trusted proxies (at most `_MAX_HOPS`)."""
    end = len(forwarded_for)
    for _ in range(_MAX_HOPS):
        start = forwarded_for.rfind(",", 0, end) + 1
        hop = forwarded_for[start:end].strip()
        end = start - 1
        if hop:
            hop_address = parse_ip(hop)
            if hop_address is None:
                break
            address = hop_address
            if not trusted.trusts(hop_address):
                break
        if end < 0:
            break
    return address


@functools.lru_cache(maxsize=4096)  # keyed on the parsed address: bounded, whatever was sent
def _stored(address: IPAddress | None, anonymize: bool) -> ClientAddress:
    if address is None:
        return ClientAddress(None, None, anonymize)
    stored = anonymize_ip(address) if anonymize else str(address)
    return ClientAddress(address, stored, anonymize)


def _scrub_address(token: str) -> str:
    address = parse_ip(token)
    return anonymize_ip(address) if address is not None else _REDACTED


def _scrub_forwarded(element: str) -> str:
    """RFC 7239 `for=1.2.3.4;proto=https;by=...`: the node parameters lose their addresses."""
    pairs = []
    for pair in element.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name.strip().lower() in ("for", "by"):
            value = _scrub_address(value)
        pairs.append(f"{name.strip()}{sep}{value}")
    return ";".join(pairs)


def _scrub_via(element: str) -> str:
    """`1.1 10.0.0.1:3128 (squid)`: an address among the words is truncated, the rest kept."""
    words = element.split(" ")
    return " ".join(_scrub_address(w) if parse_ip(w) is not None else w for w in words)


def _scrub_value(name: str, value: str) -> str:
    scrub = {"forwarded": _scrub_forwarded, "via": _scrub_via}.get(name, _scrub_address)
    return ", ".join(scrub(part.strip()) for part in value.split(","))


def scrub_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Truncate every address in the headers known to carry one (`ADDRESS_HEADERS`)."""
    return [
        (name, _scrub_value(name.lower(), value) if name.lower() in ADDRESS_HEADERS else value)
        for name, value in headers
    ]
