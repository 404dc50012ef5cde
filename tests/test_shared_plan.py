"""One fault plan for every process sharing a journal: decided at commit, in id order,
seeded rules reproducible, clears cutting every instance's delays short."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import impression
from test_journal import _post

from mockserver import Endpoint, Journal, MemoryJournal, SqliteJournal, ThreadedServer
from mockserver.journal.postgres import PostgresJournal


def test_a_rule_added_on_one_instance_applies_at_once_on_another(
    pg_instances: list[Endpoint],
) -> None:
    one, two = pg_instances
    rule = one.faults.add(status=503, times=2)
    verdicts = [_post(two, impression()).verdict for _ in range(3)]
    assert verdicts == ["faulted", "faulted", "accepted"]
    for endpoint in pg_instances:
        assert [(r["id"], r["fired"]) for r in endpoint.faults.describe()] == [(rule, 2)]
    stored = one.journal.request(1)
    assert stored is not None and stored.fault == {
        "rule": rule,
        "kind": "status",
        "status": 503,
        "seed": one.faults.describe()[0]["seed"],
    }


def test_nth_is_counted_in_commit_order_across_instances(pg_instances: list[Endpoint]) -> None:
    pg_instances[0].faults.add(status=500, nth=3)
    records = [_post(pg_instances[i % 2], impression(f"n{i}")) for i in range(5)]
    assert [r.verdict for r in records] == ["accepted"] * 2 + ["faulted"] + ["accepted"] * 2
    assert [r.id for r in records] == [1, 2, 3, 4, 5]


def test_a_full_plan_fails_the_change_alone(pg_instances: list[Endpoint]) -> None:
    from mockserver.faults import MAX_RULES, FaultPlanFull

    one, two = pg_instances
    one.faults.replace([])
    for _ in range(MAX_RULES):
        one.faults.add(delay="1ms")
    with pytest.raises(FaultPlanFull, match=f"already holds {MAX_RULES} rules"):
        two.faults.add(status=503)
    assert _post(two, impression()).verdict == "accepted"
    assert len(two.faults) == MAX_RULES


def _seeded_run(journals: list[Journal]) -> list[str]:
    """40 requests spread over `journals` under one seeded 50 % rule: the verdicts."""
    endpoints = [Endpoint(j) for j in journals]
    endpoints[0].faults.add(status=503, rate=0.5, seed=1234)
    return [_post(endpoints[i % len(endpoints)], impression(f"s{i}")).verdict for i in range(40)]


def test_a_seeded_rate_decides_the_same_in_memory_sqlite_and_shared(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runs: list[list[str]] = []
    makers: list[Callable[[], list[Journal]]] = [
        lambda: [MemoryJournal()],
        lambda: [SqliteJournal(tmp_path / "s.db")],
        lambda: [PostgresJournal(url) for url in [request.getfixturevalue("pg_url")] * 2],
    ]
    for make in makers:
        journals = make()
        try:
            runs.append(_seeded_run(journals))
        finally:
            for journal in journals:
                journal.close()
    assert runs[0] == runs[1] == runs[2]
    assert 10 < runs[0].count("faulted") < 30  # a rate, not all or nothing


def test_the_plan_outlives_an_instance(pg_url: str) -> None:
    first = PostgresJournal(pg_url)
    first.faults.add(status=429, retry_after=5)
    first.close()
    later = PostgresJournal(pg_url)
    try:
        assert [r["status"] for r in later.faults.describe()] == [429]
        assert _post(Endpoint(later), impression()).status == 429
    finally:
        later.close()


@pytest.fixture
def servers(pg_url: str) -> Iterator[list[ThreadedServer]]:
    """Two real servers on one PostgreSQL database."""
    started = [ThreadedServer(Endpoint(PostgresJournal(pg_url))).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()
        server.endpoint.journal.close()


def test_clearing_on_one_instance_cuts_another_instance_delays_short(
    servers: list[ThreadedServer],
) -> None:
    delayed, clearing = servers
    requests.post(delayed.url + "/_mock/faults", json={"delay": "30s"}, timeout=10)
    answers: list[Any] = []
    sent = threading.Thread(
        target=lambda: answers.append(
            requests.post(delayed.events_url, json=impression(), timeout=60)
        )
    )
    started = time.monotonic()
    sent.start()
    time.sleep(0.5)  # the request is waiting out its delay on the first instance
    assert requests.delete(clearing.url + "/_mock/faults", timeout=10).status_code == 204
    sent.join()
    assert answers[0].status_code == 204
    assert time.monotonic() - started < 10


def test_serve_on_sqlite_starts_with_the_plan_its_command_line_gives(
    serve: Any, tmp_path: Path
) -> None:
    db = str(tmp_path / "j.db")
    first = serve("--db", db, "--fault", "status=503")
    assert requests.get(first.url + "/_mock/faults", timeout=10).json()["rules"][0]["status"] == 503
    first.stop()
    again = serve("--db", db)
    assert requests.get(again.url + "/_mock/faults", timeout=10).json() == {"rules": []}
    assert requests.post(again.events_url, json=impression(), timeout=10).status_code == 204
