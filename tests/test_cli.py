"""The `logx-mock` command: validate, serve (as a subprocess) and events."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import PAYLOADS, conversion, impression, integrity_ok

from mockserver import ThreadedServer
from mockserver.serve.cli import main

COMMAND = [sys.executable, "-m", "mockserver"]


def write(tmp_path: Path, name: str, payload: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(payload) if not isinstance(payload, str) else payload)
    return str(path)


def test_validate_ok_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(PAYLOADS / "python-sdk-decide-impression.json")
    assert main(["validate", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok, 0 error(s), 0 warning(s)\n"


def test_validate_prints_each_error_and_warning_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = impression()
    batch["account_id"] = 1
    batch["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = 1767225600
    batch["visitors"][0]["visitorId"] = "x"
    path = write(tmp_path, "bad.json", batch)
    assert main(["validate", path]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: INVALID, 1 error(s), 1 warning(s)",
        "  error   account_id: 'account_id' must be a string, got integer [type]",
        "  warning visitors[0].snapshots[0].events[0].timestamp: timestamp looks like seconds "
        "or is before 1973: the endpoint wants epoch milliseconds [timestamp_seconds]",
        "  note    visitors[0].visitorId: unknown field 'visitorId' is ignored by Optimizely "
        "(did you mean 'visitor_id'?) [unknown_field]",
    ]


def test_validate_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.json", {"visitors": []})
    assert main(["validate", "--json", path]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False
    assert [(e["path"], e["rule"]) for e in result["errors"]] == [
        ("account_id", "required"),
        ("visitors", "empty"),
    ]


@pytest.mark.parametrize("content", ["{broken", "\ufeff{}"])
def test_validate_unparsable_exits_2(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "broken.json", content)
    assert main(["validate", path]) == 2
    assert "cannot be read" in capsys.readouterr().out


def test_validate_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(json.dumps(conversion()).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["validate", "-"]) == 0
    assert capsys.readouterr().out.startswith("-: ok")


def test_validate_as_a_real_command(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", {"account_id": "1"})
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "validate", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "visitors: 'visitors' is required [required]" in done.stdout


def test_serve_prints_url_logs_each_request_and_stops_on_ctrl_c(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"))
    assert server.banner.startswith("logx-mock listening on http://127.0.0.1:")
    assert str(tmp_path / "j.db") in server.banner
    assert server.inspector_line.startswith(f"inspector: {server.url}/_mock/ ")
    assert requests.get(server.url + "/_mock/", timeout=10).text.startswith("<!doctype html>")
    assert requests.post(server.events_url, json=impression(), timeout=10).status_code == 204
    bad = impression()
    del bad["account_id"]
    assert requests.post(server.events_url, json=bad, timeout=10).status_code == 204
    code, log = server.stop(signal.SIGINT)
    assert code == 0
    assert "#1 204 accepted from 127.0.0.0: 1 visitor(s), 1 event(s), 0 error(s)" in log
    assert "#2 204 rejected from 127.0.0.0: 1 visitor(s), 1 event(s), 1 error(s)" in log
    assert "127.0.0.1" not in log.replace("http://127.0.0.1", "")
    assert log.rstrip().endswith("logx-mock stopped; every acknowledged request is in the journal")


def test_serve_memory_and_bad_options(serve: Any) -> None:
    server = serve("--memory")
    assert "(journal: memory)" in server.banner
    assert (
        requests.get(server.url + "/_mock/health", timeout=10).json()["journal"] == "MemoryJournal"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--trust-proxy", "x/99"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--trust-proxy 'x/99' is not a CIDR" in done.stderr


def test_serve_refuses_a_busy_port(serve: Any) -> None:
    first = serve("--memory")
    port = first.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--memory", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "pick another --port, or --port 0 for any" in done.stderr


def test_serve_names_the_flag_for_a_journal_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0", "--db", str(tmp_path)]) == 2  # a folder, not a file
    err = capsys.readouterr().err
    assert "cannot open the journal" in err
    assert "pass --db with a writable path, or --memory" in err
    assert "SqliteJournal" not in err


def test_serve_names_flags_for_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--memory", "--body-timeout", "0"]) == 2
    assert "logx-mock: --body-timeout must be positive, got 0.0" in capsys.readouterr().err


def test_acknowledged_requests_survive_kill_9_and_restart(serve: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "j.db")
    server = serve("--db", db)
    uuids = []
    for i in range(50):
        batch = impression(f"k{i}")
        uuids.append(batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"])
        assert requests.post(server.events_url, json=batch, timeout=10).status_code == 204
    server.stop(signal.SIGKILL)
    assert integrity_ok(db)
    again = serve("--db", db)
    stored = requests.get(again.url + "/_mock/events", params={"limit": 1000}, timeout=10).json()
    assert [e["uuid"] for e in stored["events"]] == uuids
    assert requests.post(again.events_url, json=impression(), timeout=10).status_code == 204
    assert requests.get(again.url + "/_mock/health", timeout=10).json()["last_id"] == 51


def test_serve_max_requests_evicts_and_logs(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--max-requests", "2")
    for i in range(4):
        requests.post(server.events_url, json=impression(f"m{i}"), timeout=10)
    ids = [
        r["id"] for r in requests.get(server.url + "/_mock/requests", timeout=10).json()["requests"]
    ]
    assert ids == [3, 4]
    _, log = server.stop()
    assert "journal cap 2 reached: evicted the 1 oldest request(s)" in log


def test_events_command_lists_a_table_without_cutting_a_value(
    sqlite_server: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    requests.post(sqlite_server.events_url, json=impression("alice"), timeout=10)
    long_key = "checkout_completed_with_gift_wrapping"
    purchase = conversion(long_key, "a-visitor-with-a-long-id", revenue=4200)
    requests.post(sqlite_server.events_url, json=purchase, timeout=10)
    assert main(["events", "--url", sqlite_server.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "#",
        "verdict",
        "kind",
        "visitor",
        "key",
        "variation",
        "revenue",
        "uuid",
    ]
    assert len(lines) == 3
    impression_row, conversion_row = (line.split() for line in lines[1:])
    assert impression_row[:6] == [
        "1",
        "accepted",
        "impression",
        "alice",
        "campaign_activated",
        "treatment",
    ]
    assert conversion_row[:6] == [
        "2",
        "accepted",
        "conversion",
        "a-visitor-with-a-long-id",
        long_key,
        "4200",
    ]
    key_column = lines[0].index("key")
    assert lines[2][key_column:].startswith(long_key)  # the columns line up


def test_events_follow_with_a_limit_shows_the_newest_then_follows(
    sqlite_server: ThreadedServer,
) -> None:
    for name in ("one", "two", "three"):
        requests.post(sqlite_server.events_url, json=impression(name), timeout=10)
    proc = subprocess.Popen(
        [*COMMAND, "events", "--url", sqlite_server.url, "--limit", "2", "--follow", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = [json.loads(proc.stdout.readline())["visitor_id"] for _ in range(2)]
        assert seen == ["two", "three"]
        requests.post(sqlite_server.events_url, json=impression("four"), timeout=10)
        assert json.loads(proc.stdout.readline())["visitor_id"] == "four"
    finally:
        proc.kill()
        proc.wait()


def test_events_help_describes_every_filter(capsys: pytest.CaptureFixture[str]) -> None:
    from mockserver.journal.filters import EVENT_FILTERS, FILTER_HELP

    with pytest.raises(SystemExit):
        main(["events", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in EVENT_FILTERS:
        option = f"--{name.replace('_', '-')} VALUE"
        assert f"{option} {' '.join(FILTER_HELP[name].split())}" in text, name
    assert "--follow, -f print the newest --limit events, then each new one" in text


def test_events_command_json_and_unreachable(
    sqlite_server: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    requests.post(sqlite_server.events_url, json=impression("alice"), timeout=10)
    assert main(["events", "--url", sqlite_server.url, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["visitor_id"] == "alice"
    assert main(["events", "--url", "http://127.0.0.1:9"]) == 2
    assert "is `logx-mock serve` running?" in capsys.readouterr().err


def test_events_follow_prints_new_events_as_they_arrive(sqlite_server: ThreadedServer) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mockserver",
            "events",
            "--url",
            sqlite_server.url,
            "--follow",
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        done = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                seen.append(json.loads(line)["visitor_id"])
                if len(seen) == 2:
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        requests.post(sqlite_server.events_url, json=impression("one"), timeout=10)
        requests.post(sqlite_server.events_url, json=impression("two"), timeout=10)
        assert done.wait(20), f"follow printed only {seen}"
        assert seen == ["one", "two"]
    finally:
        proc.kill()
        proc.wait()


def _damage(db: Path, pages: range) -> None:
    """Overwrite whole pages of a SQLite file with garbage, as a bad disk or a crash of
    another tool might."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for number in pages:
        data[number * page : (number + 1) * page] = b"A" * page
    db.write_bytes(bytes(data))


def test_serve_on_a_damaged_journal_says_so_without_a_traceback(serve: Any, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db))
    for i in range(300):
        requests.post(server.events_url, json=impression(f"d{i}"), timeout=10)
    server.stop()
    _damage(db, range(3, 6))
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "database disk image is malformed" in done.stderr
    assert "the file is damaged; move it away" in done.stderr
    assert "--db NEW_PATH" in done.stderr
    assert "Traceback" not in done.stderr
