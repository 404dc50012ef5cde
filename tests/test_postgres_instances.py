"""Two `logx-mock serve` instances on one PostgreSQL behave as one mock: under load, when
one is killed, and when the database stops and comes back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import DATAFILE, impression
from test_load import journal_uuids

from contract_tests.pgserver import PostgresServer

CLIENTS = 16


class Load:
    """`CLIENTS` threads posting fresh impressions round-robin over some servers until
    stopped (or `per_client` each), remembering what was sent and what was answered."""

    def __init__(self, urls: list[str], per_client: int | None = None) -> None:
        self.urls = urls
        self.per_client = per_client
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent: list[str] = []
        self.acknowledged: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.retry_after: set[str | None] = set()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.per_client is None or exc[0] is not None:
            self.stop.set()  # else each client sends its share first
        for thread in self.threads:
            thread.join()

    def _client(self, n: int) -> None:
        with requests.Session() as session:
            i = 0
            while not self.stop.is_set() and (self.per_client is None or i < self.per_client):
                batch = impression(f"c{n}-{i}")
                uuid = batch["visitors"][0]["snapshots"][0]["events"][0]["uuid"]
                url = self.urls[(n + i) % len(self.urls)] + "/v1/events"
                with self.lock:
                    self.sent.append(uuid)
                try:
                    answer = session.post(url, json=batch, timeout=30)
                    status = answer.status_code
                except requests.RequestException:
                    status = 0  # the instance is gone: not acknowledged
                    time.sleep(0.05)
                with self.lock:
                    self.statuses[status] += 1
                    if status == 204:
                        self.acknowledged.append(uuid)
                    elif status == 503:
                        self.retry_after.add(answer.headers.get("retry-after"))
                i += 1

    def wait_for(self, status: int, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        start = self.statuses[status]
        while self.statuses[status] < start + count:
            assert time.monotonic() < deadline, f"no {status} came: {self.statuses}"
            time.sleep(0.02)


def _page(url: str) -> list[int]:
    """Every request id, read page by page with after=ID as a follower would."""
    ids: list[int] = []
    while True:
        page = requests.get(
            url + "/_mock/requests",
            params={"after": ids[-1] if ids else 0, "limit": 37},
            timeout=30,
        ).json()["requests"]
        if not page:
            return ids
        ids += [r["id"] for r in page]


def test_two_instances_under_16_clients_journal_every_request_once(serve: Any, pg_url: str) -> None:
    one, two = serve("--db", pg_url), serve("--db", pg_url)
    followed: list[int] = []
    done = threading.Event()

    def follow() -> None:  # pages while the load runs, as `events --follow` or the page would
        while not done.is_set():
            page = requests.get(
                two.url + "/_mock/requests",
                params={"after": followed[-1] if followed else 0, "limit": 50},
                timeout=30,
            ).json()["requests"]
            followed.extend(r["id"] for r in page)

    follower = threading.Thread(target=follow)
    follower.start()
    with Load([one.url, two.url], per_client=40) as load:
        pass
    done.set()
    follower.join()
    total = CLIENTS * 40
    assert load.statuses == Counter({204: total})
    followed += [i for i in _page(two.url) if not followed or i > followed[-1]]
    assert followed == list(range(1, total + 1))  # while writing: nothing missed, nothing twice
    assert _page(one.url) == followed
    for server in (one, two):
        uuids = journal_uuids(server.url)
        assert set(uuids.values()) == {1} and set(uuids) == set(load.sent)
        health = requests.get(server.url + "/_mock/health", timeout=10).json()
        assert health["last_id"] == total and health["journal"] == "PostgresJournal"


def test_another_instance_wakes_a_long_poll_and_the_page_within_a_second(
    serve: Any, pg_url: str
) -> None:
    writing, waiting = serve("--db", pg_url), serve("--db", pg_url)
    polled: list[Any] = []
    poll = threading.Thread(
        target=lambda: polled.append(
            requests.get(waiting.url + "/_mock/events", params={"wait": 20}, timeout=60).json()
        )
    )
    with requests.get(waiting.url + "/_mock/stream", stream=True, timeout=60) as stream:
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines) == "event: journal"
        assert json.loads(next(lines).removeprefix("data: "))["last_id"] == 0
        poll.start()
        time.sleep(0.3)
        sent = time.monotonic()
        requests.post(writing.url + "/v1/events", json=impression("elsewhere"), timeout=10)
        poll.join()
        announced = next(line for line in lines if line.startswith("data: "))
        took = time.monotonic() - sent
    assert polled[0]["events"][0]["visitor_id"] == "elsewhere"
    assert json.loads(announced.removeprefix("data: "))["last_id"] == 1
    # Woken, not timed out (wait=20): within a second on an idle machine; the bound is loose
    # because the suite shares two cores, and speed is not what this test is about.
    assert took < 10


def test_a_reset_and_the_cap_hold_for_every_instance(serve: Any, pg_url: str) -> None:
    one = serve("--db", pg_url, "--max-requests", "5")
    two = serve("--db", pg_url, "--max-requests", "5")
    for i in range(12):
        server = (one, two)[i % 2]
        assert requests.post(server.events_url, json=impression(f"r{i}"), timeout=10).ok
    assert _page(one.url) == _page(two.url) == list(range(8, 13))
    assert requests.delete(one.url + "/_mock/requests", timeout=10).status_code == 204
    assert _page(two.url) == []
    deadline = time.monotonic() + 5  # the other instance hears of the reset within a second
    while requests.get(two.url + "/_mock/requests", timeout=10).json()["generation"] != 1:
        assert time.monotonic() < deadline, "the other instance never saw the reset"
        time.sleep(0.05)
    assert requests.post(two.events_url, json=impression(), timeout=10).ok
    assert _page(one.url) == [13]


def test_kill_9_of_one_instance_under_load_loses_nothing_acknowledged(
    serve: Any, pg_url: str
) -> None:
    one, two = serve("--db", pg_url), serve("--db", pg_url)
    with Load([one.url, two.url]) as load:
        load.wait_for(204, 300)
        one.proc.send_signal(signal.SIGKILL)
        load.wait_for(0)  # clients see it gone
        load.wait_for(204, 300)  # and the other carries on
    journaled = journal_uuids(two.url)
    assert set(load.acknowledged) <= set(journaled)  # nothing acknowledged is lost
    assert set(journaled) <= set(load.sent) and set(journaled.values()) == {1}
    ids = _page(two.url)
    assert ids == list(range(1, len(ids) + 1))  # the killed instance's open transaction left no gap


def test_logx_mock_db_names_the_database_and_the_banner_hides_its_password(
    serve: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with_password = pg_url.replace("postgres@", "postgres:s3cret@")  # trust ignores it
    monkeypatch.setenv("LOGX_MOCK_DB", with_password)
    monkeypatch.chdir(tmp_path)
    server = serve("--workers", "2")
    assert "postgres:***@" in server.banner and "s3cret" not in server.banner
    assert requests.post(server.events_url, json=impression(), timeout=10).status_code == 204
    deadline = time.monotonic() + 5  # the other worker hears of it within a second
    while (health := requests.get(server.url + "/_mock/health", timeout=10).json())["last_id"] < 1:
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    assert health["journal"] == "PostgresJournal" and health["last_id"] == 1
    assert not (tmp_path / "logx-mock.db").exists()  # no SQLite file beside it
    other = serve("--db", pg_url)  # the same database named by the flag
    assert [e["visitor_id"] for e in journal_uuids_events(other.url)] == ["user-1"]


def journal_uuids_events(url: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = requests.get(url + "/_mock/events", timeout=10).json()["events"]
    return events


def test_an_instance_joins_the_shared_plan_and_adds_its_datafiles(serve: Any, pg_url: str) -> None:
    first = serve("--db", pg_url, "--fault", "status=503")
    assert requests.post(first.events_url, json=impression(), timeout=10).status_code == 503
    second = serve("--db", pg_url, "--datafile", str(DATAFILE))  # gives no plan: keeps it
    assert requests.post(second.events_url, json=impression(), timeout=10).status_code == 503
    rules = requests.get(second.url + "/_mock/faults", timeout=10).json()["rules"]
    assert [r["status"] for r in rules] == [503]
    deadline = time.monotonic() + 5  # the first follows within a second (LISTEN/NOTIFY)
    while not requests.get(first.url + "/_mock/datafiles", timeout=10).json()["datafiles"]:
        assert time.monotonic() < deadline, "the second's datafile never reached the first"
        time.sleep(0.05)
    third = serve("--db", pg_url, "--fault", "status=500")  # gives one: replaces it
    assert requests.post(first.events_url, json=impression(), timeout=10).status_code == 500
    assert third.proc.poll() is None


def test_the_database_stopped_and_restarted_under_load(
    serve: Any, own_server: PostgresServer
) -> None:
    url = own_server.url()
    one, two = serve("--db", url), serve("--db", url)
    with Load([one.url, two.url]) as load:
        load.wait_for(204, 200)
        own_server.stop("fast")
        load.wait_for(503, 20)
        unreadable = requests.get(one.url + "/_mock/requests", timeout=30)
        own_server.start()
        load.wait_for(204, 300, timeout=60)  # both recover, without a restart
    assert load.retry_after == {"1"}
    assert unreadable.status_code == 503 and unreadable.headers["retry-after"] == "1"
    journaled = journal_uuids(two.url)
    assert set(load.acknowledged) <= set(journaled)
    assert set(journaled) <= set(load.sent) and set(journaled.values()) == {1}
    for server in (one, two):
        _, log = server.stop()
        assert "answering 503" in log and "journal write failed" in log


BLOCKED = """
import sys, runpy
sys.modules["psycopg"] = sys.modules["psycopg_pool"] = None  # as if never installed
sys.argv = ["logx-mock", *sys.argv[1:]]
runpy.run_module("mockserver", run_name="__main__")
"""


def test_sqlite_needs_no_driver_and_a_url_without_one_says_what_to_install(
    tmp_path: Path,
) -> None:
    serve = [sys.executable, "-c", BLOCKED, "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*serve, "--db", str(tmp_path / "j.db")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        assert requests.post(url, json=impression(), timeout=10).status_code == 204
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    refused = subprocess.run(
        [*serve, "--db", "postgresql://logx:s3cret@127.0.0.1:1/logx"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "pip install 'logx-mock[postgres]'" in refused.stderr
    assert "s3cret" not in refused.stderr and "--memory" not in refused.stderr
