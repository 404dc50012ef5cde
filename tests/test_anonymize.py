"""Client address resolution and anonymization."""

from __future__ import annotations

import pytest

from mockserver import ClientAddress, TrustedProxies, anonymize_ip
from mockserver.anonymize import parse_ip, scrub_headers

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
    with pytest.raises(ValueError, match=r"--trust-proxy 'nope' is not a CIDR"):
        TrustedProxies.parse(["nope"])


def test_forwarding_headers_are_scrubbed_of_full_addresses() -> None:
    headers = [
        ("x-forwarded-for", "203.0.113.5, 2001:db8::7"),
        ("Forwarded", "for=203.0.113.5;proto=https"),
        ("x-real-ip", "203.0.113.5"),
        ("user-agent", "python-requests"),
    ]
    scrubbed = scrub_headers(headers)
    assert scrubbed == [
        ("x-forwarded-for", "203.0.113.0, 2001:db8::"),
        ("Forwarded", "[redacted]"),
        ("x-real-ip", "203.0.113.0"),
        ("user-agent", "python-requests"),
    ]
