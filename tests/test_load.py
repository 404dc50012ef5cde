"""Load and crashes against a real `logx-mock serve` on SQLite: nothing lost, nothing invented."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ServeProcess
from helpers import every_page, impression, integrity_ok

CLIENTS = 32
PER_CLIENT = 500


def _uuid(batch: dict[str, Any]) -> str:
    return str(batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"])


def hammer(
    url: str, clients: int, per_client: int, stop: threading.Event | None = None
) -> tuple[Counter[int], list[str], list[str]]:
    """`clients` threads, each posting `per_client` fresh impressions over keep-alive.
    Returns the statuses seen, the uuids answered 204, and the uuids sent."""
    statuses: Counter[int] = Counter()
    acknowledged: list[str] = []
    sent: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(per_client):
                if stop is not None and stop.is_set():
                    return
                batch = impression(f"c{n}-{i}")
                with lock:
                    sent.append(_uuid(batch))
                try:
                    status = session.post(url, json=batch, timeout=30).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    statuses[status] += 1
                    if status == 204:
                        acknowledged.append(_uuid(batch))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, acknowledged, sent


def journal_uuids(url: str) -> Counter[str]:
    return Counter(e["uuid"] for e in every_page(url, "/_mock/events", "events", limit=100_000))


def test_32_clients_x_500_requests_all_journaled_once(serve: Any, tmp_path: Path) -> None:
    server = serve("--db", str(tmp_path / "j.db"))
    statuses, acknowledged, sent = hammer(server.events_url, CLIENTS, PER_CLIENT)
    assert statuses == Counter({204: CLIENTS * PER_CLIENT})
    uuids = journal_uuids(server.url)
    assert len(uuids) == CLIENTS * PER_CLIENT == len(set(sent))
    assert set(uuids.values()) == {1}
    assert set(uuids) == set(acknowledged)
    health = requests.get(server.url + "/_mock/health", timeout=10).json()
    assert health["last_id"] == CLIENTS * PER_CLIENT


def test_a_seeded_10_percent_fault_plan_accounts_for_every_request(
    serve: Any, tmp_path: Path
) -> None:
    server = serve("--db", str(tmp_path / "j.db"), "--fault", "status=500,rate=0.1,seed=7")
    statuses, _, _ = hammer(server.events_url, CLIENTS, PER_CLIENT)
    assert set(statuses) == {204, 500}
    assert 0.07 < statuses[500] / (CLIENTS * PER_CLIENT) < 0.13
    records = every_page(server.url, "/_mock/requests", "requests", limit=100_000)
    verdicts = Counter(r["verdict"] for r in records)
    assert verdicts == Counter({"accepted": statuses[204], "faulted": statuses[500]})
    assert sum(verdicts.values()) == CLIENTS * PER_CLIENT


def test_sigkill_under_load_loses_no_acknowledged_request(serve: Any, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db))
    stop = threading.Event()
    results: list[Any] = []
    loader = threading.Thread(
        target=lambda: results.append(hammer(server.events_url, 16, 100_000, stop))
    )
    loader.start()
    time.sleep(2.0)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    stop.set()
    loader.join()
    statuses, acknowledged, _ = results[0]
    assert len(acknowledged) > 200, statuses
    assert integrity_ok(db)
    again = serve("--db", str(db))
    stored = journal_uuids(again.url)
    missing = set(acknowledged) - set(stored)
    assert missing == set(), f"{len(missing)} acknowledged request(s) lost"
    assert set(stored.values()) == {1}


def test_retention_cap_holds_the_journal_size_under_a_soak(serve: Any, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    server = serve("--db", str(db), "--max-requests", "200")
    deadline = time.monotonic() + 60
    sizes, wals = [], []
    for _ in range(3):
        hammer(server.events_url, 8, 125)
        sizes.append(db.stat().st_size)
        wal = tmp_path / "j.db-wal"
        wals.append(wal.stat().st_size if wal.exists() else 0)
        assert time.monotonic() < deadline
    listed = requests.get(
        server.url + "/_mock/requests", params={"limit": 10_000}, timeout=30
    ).json()["requests"]
    assert len(listed) == 200
    assert listed[-1]["id"] == 3000
    # The database file does not grow with the requests: evicted rows' pages are reused.
    assert sizes[2] < sizes[0] * 1.5, sizes
    # The write-ahead log is reused from its start after each checkpoint (so its file keeps
    # its high-water mark, whichever round that came in), and checkpoints keep that bounded.
    assert max(wals) < 32 * 1024 * 1024, wals


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 4 MiB tmpfs: a disk that really fills up. Mounting needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill a real disk needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_answers_503_and_recovers(serve: Any, small_disk: Path) -> None:
    server: ServeProcess = serve("--db", str(small_disk / "j.db"))
    big = impression("filler")
    big["visitors"][0]["attributes"][0]["value"] = "x" * 50_000
    acknowledged = []
    answer = None
    for i in range(400):
        batch = impression(f"fill-{i}")
        batch["visitors"][0]["attributes"][0]["value"] = "x" * 50_000
        response = requests.post(server.events_url, json=batch, timeout=30)
        if response.status_code == 503:
            answer = response
            break
        assert response.status_code == 204
        acknowledged.append(_uuid(batch))
    assert answer is not None, "the disk never filled"
    assert answer.headers["retry-after"] == "1"
    assert "full" in answer.json()["detail"] and "resend the batch" in answer.json()["detail"]
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    after = impression("after-space-returned")
    assert requests.post(server.events_url, json=after, timeout=30).status_code == 204
    stored = journal_uuids(server.url)
    assert set(acknowledged) | {_uuid(after)} <= set(stored)
    _, log = server.stop()
    assert "journal write failed" in log and "answering 503" in log
