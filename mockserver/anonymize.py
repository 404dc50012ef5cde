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

__all__ = [
    "FORWARDING_HEADERS",
    "ClientAddress",
    "TrustedProxies",
    "anonymize_ip",
    "parse_ip",
    "scrub_headers",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDING_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")
_REDACTED = "[redacted]"


def parse_ip(text: str | None) -> IPAddress | None:
    """Parse an address, treating IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4."""
    if not text:
        return None
    candidate = text.strip()
    if candidate.startswith("[") and "]" in candidate:
        candidate = candidate[1 : candidate.index("]")]
    candidate = candidate.split("%", 1)[0]
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
        """Build from CIDR strings; raises ValueError naming the bad one."""
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"--trust-proxy {cidr!r} is not a CIDR; use e.g. 10.0.0.0/8 or 127.0.0.1/32"
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
    @functools.lru_cache(maxsize=4096)  # peers repeat, and the cache is bounded
    def resolve(
        cls,
        peer: str | None,
        forwarded_for: str | None,
        trusted: TrustedProxies,
        *,
        anonymize: bool,
    ) -> ClientAddress:
        """The TCP peer, or the client named in `X-Forwarded-For` when the peer is trusted.

        The right-most untrusted hop of `X-Forwarded-For` is the client: the
        hops to its right were added by proxies we trust.
        """
        address = parse_ip(peer)
        if forwarded_for and trusted.trusts(address):
            for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
                hop_address = parse_ip(hop)
                if hop_address is None:
                    break
                address = hop_address
                if not trusted.trusts(hop_address):
                    break
        if address is None:
            return cls(None, None, anonymize)
        stored = anonymize_ip(address) if anonymize else str(address)
        return cls(address, stored, anonymize)


def _scrub_value(value: str) -> str:
    parts = []
    for part in value.split(","):
        token = part.strip()
        if "=" in token:  # RFC 7239 `Forwarded: for=1.2.3.4;proto=https`
            parts.append(_REDACTED)
            continue
        address = parse_ip(token)
        parts.append(anonymize_ip(address) if address is not None else _REDACTED)
    return ", ".join(parts)


def scrub_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Anonymize every address in the forwarding headers, for journaling."""
    return [
        (name, _scrub_value(value) if name.lower() in FORWARDING_HEADERS else value)
        for name, value in headers
    ]
