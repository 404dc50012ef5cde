"""What `serve` does so that one developer's laptop stays safe: one server per journal file,
an admin token other users cannot read, and a journal that does not grow without end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import impression

from mockserver.serve.serve_cli import RETENTION

TOKEN = "s3cret-token-for-tests"
SERVE = [sys.executable, "-m", "mockserver", "serve", "--port", "0"]


def refused(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*SERVE, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


# One server per journal file -------------------------------------------------


def test_a_second_server_on_the_same_journal_is_refused(serve: Any, tmp_path: Path) -> None:
    """Two servers in one folder silently shared ./logx-mock.db: one's DELETE wiped the
    other's view, and long-polls missed the other's commits."""
    db = tmp_path / "j.db"
    first = serve("--db", str(db))
    done = refused("--db", str(db))
    assert f"the journal {str(db)!r} is in use by another logx-mock serve (pid " in done.stderr
    assert "--db OTHER.db (or --memory)" in done.stderr
    requests.post(first.events_url, json=impression("kept"), timeout=10)
    first.stop()
    again = serve("--db", str(db))  # the lock goes with the server
    events = requests.get(again.url + "/_mock/events", timeout=10).json()["events"]
    assert [e["visitor_id"] for e in events] == ["kept"]


def test_workers_share_the_file_and_keep_everyone_else_out(serve: Any, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db), "--workers", "2")
    for i in range(6):
        sent = requests.post(
            server.events_url, json=impression(f"w{i}"), headers={"Connection": "close"}, timeout=30
        )
        assert sent.status_code == 204
    assert "is in use by another logx-mock serve" in refused("--db", str(db)).stderr
    assert (
        "is in use by another logx-mock serve" in refused("--db", str(db), "--workers", "2").stderr
    )
    listed = requests.get(server.url + "/_mock/requests", timeout=30).json()["requests"]
    assert len(listed) == 6


# The admin token, out of sight ------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _guarded(url: str) -> None:
    assert requests.get(url + "/_mock/requests", timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(url + "/_mock/requests", headers=auth, timeout=10).status_code == 200


def test_the_token_from_a_file_is_in_no_command_line(serve: Any, token_file: Path) -> None:
    server = serve("--memory", "--admin-token-file", str(token_file))
    _guarded(server.url)
    assert TOKEN.encode() not in Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
    assert "note:" not in server.read_log()


def test_the_token_from_the_environment(
    serve: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGX_MOCK_ADMIN_TOKEN", TOKEN)
    server = serve("--memory")
    _guarded(server.url)
    from mockserver.serve.cli import main

    requests.post(server.events_url, json=impression("by-env"), timeout=10)
    assert main(["events", "--url", server.url, "--json"]) == 0  # events reads it too
    assert '"visitor_id": "by-env"' in capsys.readouterr().out


def test_workers_get_no_token_in_their_environment(
    serve: Any, tmp_path: Path, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--workers` handed every worker the token in clear in its environment (`ps e`)."""
    other = "env-token-never-passed-on"
    monkeypatch.setenv("LOGX_MOCK_ADMIN_TOKEN", other)
    server = serve(
        "--db", str(tmp_path / "j.db"), "--workers", "2", "--admin-token-file", str(token_file)
    )
    _guarded(server.url)
    environs = [Path(f"/proc/{pid}/environ").read_bytes() for pid in children(server.proc.pid)]
    workers = [e for e in environs if b"LOGX_MOCK_WORKER=" in e]
    assert len(workers) >= 2  # the workers (and multiprocessing's own helper)
    assert all(b'"admin_token_sha256": "' in e for e in workers)
    for environ in environs:
        assert TOKEN.encode() not in environ
        assert other.encode() not in environ


def test_a_token_on_the_command_line_works_but_is_warned_about(serve: Any) -> None:
    server = serve("--memory", "--admin-token", TOKEN)
    _guarded(server.url)
    assert "--admin-token is visible to every local user in `ps`" in server.read_log()


def test_token_sources_that_cannot_be_used_are_refused(tmp_path: Path, token_file: Path) -> None:
    both = refused("--memory", "--admin-token", TOKEN, "--admin-token-file", str(token_file))
    assert "give the admin token once" in both.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert (
        "is empty; write the token in it"
        in refused("--memory", "--admin-token-file", str(empty)).stderr
    )
    missing = refused("--memory", "--admin-token-file", str(tmp_path / "missing"))
    assert "cannot read --admin-token-file" in missing.stderr
    short = {**os.environ, "LOGX_MOCK_ADMIN_TOKEN": "short"}
    assert "at least 8 characters" in refused("--memory", env=short).stderr


def test_a_token_file_others_can_read_is_warned_about(serve: Any, token_file: Path) -> None:
    token_file.chmod(0o644)
    server = serve("--memory", "--admin-token-file", str(token_file))
    _guarded(server.url)
    assert "is readable by other users; chmod 600 it" in server.read_log()


# Retention by default ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["--memory"], RETENTION["memory"]),
        (["--db", "{tmp}/j.db"], RETENTION["sqlite"]),
        (["--memory", "--max-requests", "0"], None),
        (["--db", "{tmp}/j.db", "--max-requests", "7"], 7),
    ],
)
def test_serve_keeps_a_bounded_journal_by_default(
    serve: Any, tmp_path: Path, args: list[str], kept: int | None
) -> None:
    server = serve(*(a.format(tmp=tmp_path) for a in args))
    health = requests.get(server.url + "/_mock/health", timeout=10).json()
    assert health["max_requests"] == kept
    assert server.proc.stdout is not None
    shown = "all requests" if kept is None else f"the newest {kept:,}"
    assert (
        server.proc.stdout.readline() == f"journal keeps {shown} (--max-requests N; 0 keeps all)\n"
    )


def test_retention_evicts_the_oldest(serve: Any) -> None:
    server = serve("--memory", "--max-requests", "3")
    for i in range(5):
        requests.post(server.events_url, json=impression(f"r{i}"), timeout=10)
    events = requests.get(server.url + "/_mock/events", timeout=10).json()["events"]
    assert [e["visitor_id"] for e in events] == ["r2", "r3", "r4"]
    assert "--max-requests must be 0 (keep all) or more" in refused("--max-requests", "-1").stderr
