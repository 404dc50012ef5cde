"""`logx-mock replay`: an export sent again to a second real server gives the same verdicts;
headers, bodies, --strict, --rate, --concurrency, exit codes, and the progress bar on a
terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import impression
from journal_traffic import fill

from mockserver import RequestRecord, ThreadedServer
from mockserver.serve.cli import main

CONNECTION = {"host", "content-length", "connection"}


def exported(tmp_path: Path) -> tuple[Path, list[RequestRecord]]:
    """An export of every kind of request, and the records it came from."""
    path = tmp_path / "traffic.ndjson"
    with ThreadedServer() as source:
        fill(source)
        assert main(["export", "--url", source.url, "-o", str(path)]) == 0
        return path, source.endpoint.journal.requests()


def judged(record: RequestRecord) -> tuple[Any, ...]:
    """What a server decided about a request."""
    rules = lambda found: [(v.path, v.rule) for v in found]  # noqa: E731
    return record.verdict, record.status, rules(record.errors), rules(record.warnings)


def sent_headers(record: RequestRecord) -> list[tuple[str, str]]:
    return [(k, v) for k, v in record.headers if k not in CONNECTION]


def test_replay_into_a_second_server_gives_the_same_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, original = exported(tmp_path)
    with ThreadedServer() as target:
        assert main(["replay", str(path), "--to", target.events_url]) == 1  # some were 400
        replayed = target.endpoint.journal.requests()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"replayed 13 request(s) to {target.url} (1 skipped)"
    assert sorted(out[1:4]) == sorted(
        [
            f"  {'204':<28} {9:>8,}",
            f"  {'400':<28} {4:>8,}",
            f"  {'skipped (body not kept)':<28} {1:>8,}",
        ]
    )
    assert out[-1] == "FAILED: 4 answer(s) were not 2xx"
    # The too_large body was never kept; the fault was the first server's, not the traffic's.
    kept = [r for r in original if r.verdict != "too_large"]
    expected = [judged(r) if r.verdict != "faulted" else ("accepted", 204, [], []) for r in kept]
    assert [judged(r) for r in replayed] == expected
    assert [sent_headers(r) for r in replayed] == [sent_headers(r) for r in kept]
    assert [r.payload for r in replayed] == [r.payload for r in kept]
    assert [r.raw for r in replayed] == [r.raw for r in kept]


def test_strict_turns_a_silent_rejection_into_a_400(tmp_path: Path) -> None:
    path, _ = exported(tmp_path)
    with ThreadedServer() as target:
        assert main(["replay", str(path), "--to", target.url, "--strict"]) == 1
        replayed = target.endpoint.journal.requests()
    assert all(r.strict for r in replayed)
    rejected = [r for r in replayed if r.verdict == "rejected"]
    assert [r.status for r in rejected] == [400, 400]


def clean_export(tmp_path: Path, count: int, **headers: str) -> Path:
    path = tmp_path / "clean.ndjson"
    with ThreadedServer() as source:
        for n in range(count):
            requests.post(source.events_url, json=impression(f"v{n}"), headers=headers, timeout=10)
        assert main(["export", "--url", source.url, "-o", str(path)]) == 0
    return path


def test_all_2xx_exits_0_at_a_rate_and_with_concurrency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = clean_export(tmp_path, 6)
    with ThreadedServer() as target:
        started = time.monotonic()
        assert main(["replay", str(path), "--to", target.url, "--rate", "20/s"]) == 0
        paced = time.monotonic() - started
        assert main(["replay", str(path), "--to", target.url, "--concurrency", "4"]) == 0
        assert target.endpoint.journal.last_id == 12
    assert "OK: every answer was 2xx" in capsys.readouterr().out
    # At 20/s the sixth request cannot start before 5/20 s have passed (a lower bound the
    # pacing guarantees, not a measure of speed).
    assert paced >= 5 / 20 - 0.005


def test_only_the_given_url_gets_requests_and_connection_headers_stay_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = clean_export(
        tmp_path,
        1,
        Connection="keep-alive, x-hop",
        **{"X-Hop": "private", "Keep-Alive": "timeout=5", "X-Custom": "kept"},
    )
    line = json.loads(path.read_text())
    line["host"] = "logx.optimizely.com"
    line["headers"] = [["host", "logx.optimizely.com"], *line["headers"][1:]]
    path.write_text(json.dumps(line) + "\n")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # ignored: only --to is used
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with ThreadedServer() as target:
        assert main(["replay", str(path), "--to", target.url]) == 0
        (record,) = target.endpoint.journal.requests()
    names = {k.lower() for k, _ in record.headers}
    assert "x-custom" in names and not names & {"x-hop", "keep-alive"}
    assert record.host == f"127.0.0.1:{target.port}"


def test_bad_options_and_files_exit_2_and_send_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = clean_export(tmp_path, 1)
    bad = tmp_path / "bad.ndjson"
    bad.write_text(path.read_text() + "not json\n")
    with ThreadedServer() as target:
        assert main(["replay", str(bad), "--to", target.url]) == 2
        assert "bad.ndjson: line 2: not JSON" in capsys.readouterr().err
        for options, words in (
            (["--to", "ftp://x"], "is not an http(s) URL"),
            (["--to", target.url, "--rate", "fast"], "--rate 'fast' is not a rate"),
            (["--to", target.url, "--rate", "0/s"], "--rate '0/s' is not a rate"),
            (["--to", target.url, "--concurrency", "0"], "--concurrency must be 1 or more"),
        ):
            assert main(["replay", str(path), *options]) == 2
            assert words in capsys.readouterr().err
        assert target.endpoint.journal.last_id == 0
    assert main(["replay", str(path), "--to", "http://127.0.0.1:9"]) == 1
    assert "no answer (ConnectError)" in capsys.readouterr().out


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(tmp_path: Path) -> None:
    path = clean_export(tmp_path, 3)
    with ThreadedServer() as target:
        command = [sys.executable, "-m", "mockserver", "replay", str(path), "--to", target.url]
        piped = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert piped.returncode == 0 and piped.stderr == ""
        main_fd, tty_fd = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
        with subprocess.Popen(command, stdout=tty_fd, stderr=tty_fd, env=env) as proc:
            os.close(tty_fd)
            shown = _read_all(main_fd)
            assert proc.wait(timeout=60) == 0
    assert "replay" in shown and "3/3" in shown and "━" in shown
    assert "OK: every answer was 2xx" in shown


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side closed: EIO on Linux
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")
