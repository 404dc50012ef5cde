"""`ServeSettings`: built once, handed whole to the workers as JSON, and the app every
process builds from them behaves as configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from helpers import DATAFILE, impression

from mockserver import ConfigError, ThreadedServer
from mockserver.faults import parse_spec
from mockserver.serve.settings import ServeSettings
from mockserver.web.guard import GuardConfig
from mockserver.web.protocol import ServerLimits


def _full(tmp_path: Path) -> ServeSettings:
    return ServeSettings(
        db=str(tmp_path / "j.db"),
        max_requests=50,
        trusted_proxies=("10.0.0.0/8",),
        body_timeout=3.0,
        faults=(parse_spec("status=503,times=1"), parse_spec("delay=10ms-20ms,rate=0.5,seed=1")),
        datafiles=(str(DATAFILE),),
        admin_token_sha256=GuardConfig(token="a-long-token").token_sha256,
        allowed_hosts=frozenset({"mock.internal"}),
        limits=ServerLimits(head_timeout=4.0, idle_timeout=2.0, max_connections=64),
        workers=2,
        insecure_admin=True,
        tls=True,
        proxy_port=0,
        ca_dir=str(tmp_path / "ca"),
        certificate={"ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"},
    )


def test_json_round_trip_keeps_every_setting(tmp_path: Path) -> None:
    settings = _full(tmp_path)
    assert ServeSettings.from_json(settings.to_json()) == settings
    assert "a-long-token" not in settings.to_json()  # only its digest travels


def test_a_bad_setting_fails_on_construction_not_in_a_worker() -> None:
    with pytest.raises(ConfigError, match="trusted proxy 'nope' is not a CIDR"):
        ServeSettings(trusted_proxies=("nope",))


def test_the_app_built_from_settings_is_configured_by_them(tmp_path: Path) -> None:
    settings = ServeSettings.from_json(_full(tmp_path).to_json())
    endpoint = settings.build_endpoint()
    assert endpoint.journal.max_requests == 50
    assert endpoint.config.body_timeout == 3.0
    assert [f.project_id for f in endpoint.config.datafiles.files]
    with ThreadedServer(endpoint) as server:
        first = requests.post(server.events_url, json=impression("v1"), timeout=10)
        second = requests.post(server.events_url, json=impression("v2"), timeout=10)
    assert (first.status_code, second.status_code) == (503, 204)  # the fault plan, in order
    assert settings.guard().host_allowed("mock.internal")
    assert not settings.guard().host_allowed("evil.example")
    endpoint.journal.close()


def test_the_journal_is_opened_the_one_way_every_command_opens_db(tmp_path: Path) -> None:
    settings = ServeSettings(db=str(tmp_path / "j.db"), max_requests=7)
    journal = settings.open_journal()
    try:
        assert type(journal).__name__ == "SqliteJournal"
        assert journal.max_requests == 7
    finally:
        journal.close()
    assert (tmp_path / "j.db").is_file()


def test_workers_get_paths_resolved_and_a_url_as_typed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    local = ServeSettings(db="j.db", datafiles=("d.json",)).resolved()
    assert (local.db, local.datafiles) == (str(tmp_path / "j.db"), (str(tmp_path / "d.json"),))
    url = "postgresql://mock:s3cret@db.internal/logx"
    remote = ServeSettings(db=url)
    assert remote.resolved().db == url
    assert "s3cret" not in remote.journal_shown
    assert "db.internal" in remote.journal_shown
