"""`logx-mock serve --workers N`: N processes, one SQLite journal, one view of it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import eventually, impression, in_database_file, integrity_ok

from mockserver.serve.server import bind_socket, listening_twin


def test_two_workers_share_one_journal(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2")

    def send(i: int) -> int:
        with requests.Session() as session:
            return session.post(server.events_url, json=impression(f"w{i}"), timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(send, range(300))) == {204}
    records = requests.get(
        server.url + "/_mock/requests", params={"limit": 1000}, timeout=30
    ).json()["requests"]
    assert sorted(r["id"] for r in records) == list(range(1, 301))
    visitors = {
        e["visitor_id"]
        for e in requests.get(
            server.url + "/_mock/events", params={"limit": 1000}, timeout=30
        ).json()["events"]
    }
    assert visitors == {f"w{i}" for i in range(300)}


def test_duplicates_are_found_across_workers(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2")
    batch = impression("twice")
    for _ in range(10):  # fresh connections: the kernel spreads them over both workers
        requests.post(server.events_url, json=batch, timeout=30, headers={"Connection": "close"})
    events = requests.get(server.url + "/_mock/events", timeout=30).json()["events"]
    assert [e["duplicate"] for e in events] == [False] + [True] * 9


def test_long_poll_and_reset_see_every_worker(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2")
    requests.post(server.events_url, json=impression("first"), timeout=30)
    answers: list[Any] = []

    def poll() -> None:
        answers.append(
            requests.get(
                server.url + "/_mock/events", params={"after": 1, "wait": 20}, timeout=60
            ).json()
        )

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for thread in pollers:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    for _ in range(4):
        requests.post(
            server.events_url, json=impression("later"), timeout=30, headers={"Connection": "close"}
        )
    for thread in pollers:
        thread.join()
    assert time.monotonic() - started < 10
    assert all(a["events"] and a["events"][0]["visitor_id"] == "later" for a in answers)
    assert requests.delete(server.url + "/_mock/requests", timeout=30).status_code == 204
    for _ in range(6):
        listed = requests.get(server.url + "/_mock/requests", timeout=30).json()
        assert listed["requests"] == []


def test_workers_need_a_shared_journal() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--memory", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        "--workers N needs N >= 1, and a journal to share when N > 1: a SQLite file or a "
        "PostgreSQL URL (--db)" in done.stderr
    )


def test_the_fault_plan_is_one_for_every_worker(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2", "--fault", "status=502,nth=1")
    faults = server.url + "/_mock/faults"
    closing = {"Connection": "close"}  # fresh connections: the kernel spreads them
    added = requests.post(faults, json={"status": 503, "times": 6}, timeout=30, headers=closing)
    assert added.status_code == 201 and added.json()["id"] == 2
    statuses = [
        requests.post(
            server.events_url, json=impression(f"f{i}"), timeout=30, headers=closing
        ).status_code
        for i in range(12)
    ]
    assert statuses == [502] + [503] * 6 + [204] * 5  # one plan, one count, in commit order
    for _ in range(6):  # whichever worker answers, the counts are the same
        listed = requests.get(faults, timeout=30, headers=closing).json()["rules"]
        assert [(r["id"], r["fired"]) for r in listed] == [(1, 1), (2, 6)]
    assert requests.delete(faults, timeout=30, headers=closing).status_code == 204
    for _ in range(6):
        assert requests.get(faults, timeout=30, headers=closing).json() == {"rules": []}


def _listening(port: int) -> list[int]:
    """The inodes of the sockets listening on 127.0.0.1:`port` (the kernel's own table)."""
    inodes = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # LISTEN
            inodes.append(int(fields[9]))
    return inodes


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def test_each_worker_listens_on_a_socket_of_its_own(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2")
    assert requests.get(server.url + "/_mock/health", timeout=60).status_code == 200  # up
    port = int(server.url.rsplit(":", 1)[1])
    listening = _listening(port)
    assert len(listening) == 2  # one each: the kernel spreads connections over them
    workers = [pid for pid in _children(server.proc.pid) if set(listening) & _socket_inodes(pid)]
    assert len(workers) == 2
    served = [set(listening) & _socket_inodes(pid) for pid in workers]
    assert sorted(len(own) for own in served) == [1, 1] and served[0] != served[1]


def test_a_worker_started_again_serves_every_socket(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--workers", "2")
    assert requests.get(server.url + "/_mock/health", timeout=60).status_code == 200  # up
    port = int(server.url.rsplit(":", 1)[1])
    listening = set(_listening(port))
    assert len(listening) == 2
    before = set(_children(server.proc.pid))
    victim = next(pid for pid in before if len(listening & _socket_inodes(pid)) == 1)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = set(_children(server.proc.pid)) - before
        if started and listening <= _socket_inodes(next(iter(started))):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no worker serves every socket after {victim} died")
    statuses = [  # fresh connections, over both sockets: none waits on an orphaned one
        requests.post(
            server.events_url, json=impression(f"r{i}"), timeout=30, headers={"Connection": "close"}
        ).status_code
        for i in range(20)
    ]
    assert statuses == [204] * 20


def test_a_port_already_listened_on_is_refused_even_to_reuse_port() -> None:
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            bind_socket("127.0.0.1", plain.getsockname()[1], reuse_port=True)
    sharing = bind_socket("127.0.0.1", 0, reuse_port=True)  # another --workers server
    try:
        with pytest.raises(OSError, match="pick another port"):
            bind_socket("127.0.0.1", sharing.getsockname()[1], reuse_port=True)
        twin = listening_twin(sharing)  # its own twin is welcome
        assert twin.getsockname() == sharing.getsockname()
        twin.close()
    finally:
        sharing.close()


def _flock_holders(path: Path) -> list[int]:
    """The pids holding a `flock` on `path` (the kernel's table: /proc/locks)."""
    inode = path.stat().st_ino
    holders = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:
            holders.append(int(fields[4]))
    return holders


def _sent(server: Any, count: int, prefix: str) -> None:
    for i in range(count):  # fresh connections, over both workers
        answer = requests.post(
            server.events_url,
            json=impression(f"{prefix}{i}"),
            timeout=30,
            headers={"Connection": "close"},
        )
        assert answer.status_code == 204


def test_one_worker_checkpoints_and_another_takes_over_when_it_dies(
    serve: Any, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db), "--workers", "2")
    _sent(server, 10, "a")
    duty = Path(f"{db}-checkpointer")
    assert eventually(lambda: duty.exists() and len(_flock_holders(duty)) == 1)
    (holder,) = _flock_holders(duty)
    assert holder in _children(server.proc.pid)  # a worker, not the parent
    assert eventually(lambda: in_database_file(db) == 10)
    os.kill(holder, signal.SIGKILL)
    assert eventually(lambda: len(_flock_holders(duty)) == 1 and holder not in _flock_holders(duty))
    _sent(server, 10, "b")  # acknowledged by the workers left (or started again)
    assert eventually(lambda: in_database_file(db) == 20)
    assert integrity_ok(db)
