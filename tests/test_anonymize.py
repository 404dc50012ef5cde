"""Client address resolution and anonymization."""

from __future__ import annotations

import pytest

from mockserver import ClientAddress, TrustedProxies, anonymize_ip
from mockserver.anonymize import ADDRESS_HEADERS, parse_ip, scrub_headers

NONE = TrustedProxies()


@pytest.mark.parametrize(
    ("address", "anonymized"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.1.2.255", "10.1.2.0"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
        ("::1", "::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("[2001:db8::1]", "2001:db8::"),
        ("fe80::1%eth0", "fe80::"),
    ],
)
def test_anonymization_truncates_the_host_part(address: str, anonymized: str) -> None:
    parsed = parse_ip(address)
    assert parsed is not None
    assert anonymize_ip(parsed) == anonymized


@pytest.mark.parametrize("text", [None, "", "testclient", "999.1.1.1", "unix:/tmp/s"])
def test_unparsable_peers_are_none(text: str | None) -> None:
    assert parse_ip(text) is None
    assert ClientAddress.resolve(text, None, NONE, anonymize=True).stored is None


def test_peer_is_used_and_forwarded_for_ignored_when_untrusted() -> None:
    client = ClientAddress.resolve("192.0.2.10", "203.0.113.5", NONE, anonymize=False)
    assert client.stored == "192.0.2.10"


def test_trusted_proxy_forwarded_for_names_the_client() -> None:
    trusted = TrustedProxies.parse(["127.0.0.1/32", "10.0.0.0/8"])
    client = ClientAddress.resolve("127.0.0.1", "203.0.113.5, 10.0.0.7", trusted, anonymize=False)
    assert client.stored == "203.0.113.5"
    anonymized = ClientAddress.resolve("127.0.0.1", "203.0.113.5", trusted, anonymize=True)
    assert anonymized.stored == "203.0.113.0"


def test_forged_hops_left_of_the_client_are_not_believed() -> None:
    trusted = TrustedProxies.parse(["127.0.0.1/32"])
    client = ClientAddress.resolve("127.0.0.1", "1.1.1.1, 198.51.100.4", trusted, anonymize=False)
    assert client.stored == "198.51.100.4"


def test_garbage_forwarded_for_falls_back_to_the_peer() -> None:
    trusted = TrustedProxies.parse(["127.0.0.1/32"])
    client = ClientAddress.resolve("127.0.0.1", "not-an-ip", trusted, anonymize=False)
    assert client.stored == "127.0.0.1"


def test_ipv4_mapped_peer_is_stored_as_ipv4() -> None:
    client = ClientAddress.resolve("::ffff:127.0.0.1", None, NONE, anonymize=True)
    assert client.stored == "127.0.0.0"


def test_bad_cidr_names_itself() -> None:
    with pytest.raises(ValueError, match=r"trusted proxy 'nope' is not a CIDR"):
        TrustedProxies.parse(["nope"])


def test_forwarding_headers_are_scrubbed_of_full_addresses() -> None:
    headers = [
        ("x-forwarded-for", "203.0.113.5, 2001:db8::7, unknown"),
        ("Forwarded", 'for=203.0.113.5;proto=https;by="[2001:db8::9]:443", for=_hidden'),
        ("x-real-ip", "203.0.113.5"),
        ("Via", "1.1 203.0.113.9:3128 (squid/6.1), 1.0 fred"),
        ("user-agent", "python-requests"),
    ]
    scrubbed = scrub_headers(headers)
    assert scrubbed == [
        ("x-forwarded-for", "203.0.113.0, 2001:db8::, [redacted]"),
        ("Forwarded", "for=203.0.113.0;proto=https;by=2001:db8::, for=[redacted]"),
        ("x-real-ip", "203.0.113.0"),
        ("Via", "1.1 203.0.113.0 (squid/6.1), 1.0 fred"),
        ("user-agent", "python-requests"),
    ]


@pytest.mark.parametrize("name", sorted(ADDRESS_HEADERS))
def test_every_header_known_to_carry_an_address_is_scrubbed(name: str) -> None:
    value = "for=203.0.113.5" if name == "forwarded" else "1.1 203.0.113.5:80"
    if name not in ("forwarded", "via"):
        value = "203.0.113.5:4711, [2001:db8::7]:80"
    ((_, scrubbed),) = scrub_headers([(name.upper(), value)])
    assert "203.0.113.5" not in scrubbed and "2001:db8::7" not in scrubbed
    assert "203.0.113.0" in scrubbed


def test_the_last_forwarded_for_line_is_the_nearest_proxys() -> None:
    """A client can send its own X-Forwarded-For; a proxy that adds a line rather than
    appending to it writes the last one. Joined in order, the walk starts there."""
    trusted = TrustedProxies.parse(["127.0.0.1/32"])
    joined = "198.51.100.66,203.0.113.77"  # the forged line, then the proxy's
    client = ClientAddress.resolve("127.0.0.1", joined, trusted, anonymize=False)
    assert client.stored == "203.0.113.77"


def test_a_chain_of_trusted_hops_is_walked_at_most_64_deep() -> None:
    trusted = TrustedProxies.parse(["10.0.0.0/8", "127.0.0.1/32"])
    chain = "203.0.113.77, " + ", ".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100))
    client = ClientAddress.resolve("127.0.0.1", chain, trusted, anonymize=False)
    assert client.stored == "10.0.0.37"  # the 64th hop from the right; the client is not reached
