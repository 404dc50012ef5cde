"""IP anonymization over real sockets: IPv4, IPv6, IPv4-mapped, trusted proxies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import exchange, impression, raw_post

from mockserver import Endpoint, EndpointConfig, SqliteJournal, ThreadedServer, TrustedProxies
from mockserver.anonymize import ADDRESS_HEADERS

CLIENT = "203.0.113.77"


def only_record(server: ThreadedServer) -> dict:
    (record,) = requests.get(server.url + "/_mock/requests", timeout=10).json()["requests"]
    return record


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ThreadedServer]:
    journal = SqliteJournal(tmp_path / "j.db")
    config = EndpointConfig(trusted_proxies=TrustedProxies.parse(["127.0.0.1/32"]))
    with ThreadedServer(Endpoint(journal, config=config)) as server:
        yield server
    journal.close()


@pytest.mark.parametrize(
    ("anonymize", "stored"), [(True, "127.0.0.0"), (None, "127.0.0.0"), (False, "127.0.0.1")]
)
def test_ipv4_peer(sqlite_server: ThreadedServer, anonymize: bool | None, stored: str) -> None:
    batch = impression()
    if anonymize is None:
        del batch["anonymize_ip"]
    else:
        batch["anonymize_ip"] = anonymize
    requests.post(sqlite_server.events_url, json=batch, timeout=10)
    assert only_record(sqlite_server)["client_ip"] == stored


@pytest.mark.parametrize(("anonymize", "stored"), [(True, "::"), (False, "::1")])
def test_ipv6_peer(tmp_path: Path, anonymize: bool, stored: str) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    with ThreadedServer(Endpoint(journal), host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        batch = impression()
        batch["anonymize_ip"] = anonymize
        assert requests.post(server.events_url, json=batch, timeout=10).status_code == 204
        assert only_record(server)["client_ip"] == stored
    journal.close()


def test_ipv4_mapped_peer_on_a_dual_stack_socket(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    with ThreadedServer(Endpoint(journal), host="::") as server:
        url = f"http://127.0.0.1:{server.port}"
        batch = impression()
        batch["anonymize_ip"] = False
        requests.post(url + "/v1/events", json=batch, timeout=10)
        requests.post(url + "/v1/events", json=impression(), timeout=10)
        records = requests.get(url + "/_mock/requests", timeout=10).json()["requests"]
        assert [r["client_ip"] for r in records] == ["127.0.0.1", "127.0.0.0"]
    journal.close()


def test_trusted_proxy_forwarded_for_is_used_and_anonymized(proxied: ThreadedServer) -> None:
    requests.post(
        proxied.events_url, json=impression(), headers={"X-Forwarded-For": CLIENT}, timeout=10
    )
    record = only_record(proxied)
    assert record["client_ip"] == "203.0.113.0"
    assert ["x-forwarded-for", "203.0.113.0"] in record["headers"]


def test_trusted_proxy_without_anonymization_keeps_the_address(proxied: ThreadedServer) -> None:
    batch = impression()
    batch["anonymize_ip"] = False
    requests.post(proxied.events_url, json=batch, headers={"X-Forwarded-For": CLIENT}, timeout=10)
    record = only_record(proxied)
    assert record["client_ip"] == CLIENT
    assert ["x-forwarded-for", CLIENT] in record["headers"]


def test_untrusted_peer_forwarded_for_is_ignored(sqlite_server: ThreadedServer) -> None:
    requests.post(
        sqlite_server.events_url, json=impression(), headers={"X-Forwarded-For": CLIENT}, timeout=10
    )
    assert only_record(sqlite_server)["client_ip"] == "127.0.0.0"


def test_full_address_appears_nowhere(
    proxied: ThreadedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    headers = {name: CLIENT for name in ADDRESS_HEADERS}
    headers.update({"Forwarded": f'for="{CLIENT}:4711"', "Via": f"1.1 {CLIENT} (proxy)"})
    requests.post(proxied.events_url, json=impression(), headers=headers, timeout=10)
    bad = impression()
    del bad["account_id"]
    requests.post(proxied.events_url, json=bad, headers=headers, timeout=10)
    requests.post(proxied.events_url, data=b"{broken", headers=headers, timeout=10)
    seen = [
        requests.get(proxied.url + path, timeout=10).text
        for path in ("/_mock/requests", "/_mock/requests/1", "/_mock/requests/3", "/_mock/events")
    ]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("j.db*"))
    assert json.loads(seen[0])["requests"][0]["client_ip"] == "203.0.113.0"
    assert all(CLIENT not in text for text in seen)
    assert CLIENT.encode() not in stored
    assert CLIENT not in caplog.text
    assert "203.0.113.0" in caplog.text


def test_full_address_is_not_in_the_events_export(
    proxied: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from mockserver.serve.cli import main

    requests.post(
        proxied.events_url, json=impression(), headers={"X-Forwarded-For": CLIENT}, timeout=10
    )
    assert main(["events", "--url", proxied.url, "--json"]) == 0
    assert main(["events", "--url", proxied.url]) == 0
    out = capsys.readouterr().out
    assert "python-sdk" in out or "campaign_activated" in out
    assert CLIENT not in out


def test_a_forged_forwarded_for_line_does_not_name_the_client(proxied: ThreadedServer) -> None:
    """The client sends its own X-Forwarded-For line; the trusted proxy adds a second line.
    The client is the right-most hop of the last line, not of the first."""
    body = json.dumps(impression()).encode()
    head = raw_post(body, strict=False).split(b"\r\n", 1)
    forged = b"X-Forwarded-For: 198.51.100.66\r\nX-Forwarded-For: " + CLIENT.encode()
    status, _, _ = exchange(proxied.port, head[0] + b"\r\n" + forged + b"\r\n" + head[1])
    assert status == 204
    record = only_record(proxied)
    assert record["client_ip"] == "203.0.113.0"
    assert ["x-forwarded-for", "198.51.100.0"] in record["headers"]
