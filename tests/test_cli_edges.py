"""The command line's rough edges: a closed pipe, a port that cannot be bound, a missing
folder or file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers import impression

from mockserver import ThreadedServer
from mockserver.serve.cli import main

COMMAND = [sys.executable, "-m", "mockserver"]


def piped_into_head(args: list[str], cwd: Path | None = None) -> tuple[int, str, str]:
    """Run `logx-mock ARGS | head -n 1` and return (logx-mock's exit code, head's output,
    logx-mock's stderr)."""
    logx = subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd
    )
    assert logx.stdout is not None and logx.stderr is not None
    head = subprocess.run(
        ["head", "-n", "1"], stdin=logx.stdout, capture_output=True, text=True, timeout=60
    )
    logx.stdout.close()  # head holds the only reading end now; it has exited
    stderr = logx.stderr.read().decode()
    logx.stderr.close()
    return logx.wait(timeout=60), head.stdout, stderr


def test_validate_json_piped_into_head_exits_quietly(tmp_path: Path) -> None:
    # Enough output to fill the pipe: head exits after one line, and the rest has nowhere to go.
    batch = impression()
    batch["visitors"] = [{"visitor_id": 5, "snapshots": []} for _ in range(3000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(batch))
    code, first, stderr = piped_into_head(["validate", "--json", str(path)])
    assert first == "{\n"
    assert stderr == ""
    assert code == 141  # what a shell reports for a Unix tool ended by SIGPIPE


def test_events_json_piped_into_head_exits_quietly() -> None:
    with ThreadedServer() as server:
        # 200 events of over 2 KB, whose table rows are over 2 KB too (a visitor id is never
        # cut): more than a pipe holds, so writing goes on after head has gone.
        batch = impression("piped-" + "x" * 2000)
        batch["visitors"] *= 200
        assert requests.post(server.events_url, json=batch, timeout=10).status_code == 204
        for args in (["--json"], []):
            code, first, stderr = piped_into_head(["events", "--url", server.url, *args])
            assert first.strip()
            assert stderr == ""
            assert code == 141


def test_serve_that_cannot_bind_creates_no_journal(tmp_path: Path) -> None:
    with ThreadedServer() as busy:
        done = subprocess.run(
            [*COMMAND, "serve", "--port", str(busy.port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{busy.port}" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no ./logx-mock.db, no -wal, no -shm


def test_serve_db_in_a_missing_folder_says_the_folder_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--port", "0", "--db", "nope/sub/j.db"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "logx-mock: cannot create the journal 'nope/sub/j.db': the folder 'nope/sub' does not "
        "exist; create it, or pass --db with a path in an existing folder\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_validate_a_missing_file_says_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.json")
    assert main(["validate", missing]) == 2
    assert capsys.readouterr().out == f"{missing}: cannot be read: No such file or directory\n"
    assert main(["validate", "--json", missing]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "file": missing,
        "unreadable": "No such file or directory",
    }
