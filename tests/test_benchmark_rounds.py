"""benchmarks/run.py's rounds: each figure the median of its rounds, each ratio the median
of the rounds' ratios (a server against the floor of its own round)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

import run


def _load(server: str, rps: float, p99: float, cpu: float = 50.0, errors: int = 0) -> run.Load:
    return run.Load(server, run.ONE, rps, 1.0, p99, errors, cpu)


def test_a_figure_is_the_median_of_its_rounds_and_errors_add_up() -> None:
    rounds = [_load(run.SQLITE, 10_000, 9.0, 90), _load(run.SQLITE, 14_000, 4.0, 70, 2)]
    rounds.append(_load(run.SQLITE, 12_000, 5.0, 80, 1))
    load = run.median_load(rounds)
    assert (load.rps, load.p99_ms, load.cpu_us, load.errors) == (12_000, 5.0, 80, 3)
    assert load.rounds == tuple(rounds)  # kept in their order, for the table
    single = _load(run.SQLITE, 10_000, 9.0)
    assert run.median_load([single]) is single


def test_a_ratio_pairs_each_round_with_the_floor_of_the_same_round() -> None:
    floor = run.median_load([_load(run.FLOOR, r, 3.0) for r in (20_000, 30_000, 25_000)])
    ours = run.median_load([_load(run.SQLITE, r, 6.0) for r in (11_000, 14_000, 12_000)])
    # Round by round 0.55, 0.47, 0.48: their median 0.48, where the medians' ratio is 0.48
    # too but a slow floor round paired with a fast server round would not be.
    assert [round(v, 2) for v in run.round_ratios(ours, floor, "rps")] == [0.55, 0.47, 0.48]
    assert run.ratio_text(run.round_ratios(ours, floor, "rps")) == "0.48x (0.47-0.55)"
    assert run.ratio_text(run.round_ratios(ours, floor, "p99_ms")) == "2.00x (2.00-2.00)"
    one = _load(run.SQLITE, 10_000, 6.0)
    assert run.ratio_text(run.round_ratios(one, _load(run.FLOOR, 20_000, 3.0), "rps")) == "0.50x"
    assert run.ratio_text([]) == "-"


def test_a_target_is_met_by_the_median_of_its_rounds_not_by_one_round() -> None:
    floor = run.median_load([_load(run.FLOOR, r, 3.0) for r in (20_000, 20_000, 20_000)])
    ours = run.median_load(
        [_load(run.SQLITE, r, p) for r, p in ((11_000, 5), (9_000, 12), (9_500, 7))]
    )
    rows = {name: (measured, met) for name, measured, met in run.targets([floor, ours], [])}
    half = rows["one impression, SQLite, one process >= 0.5x floor req/s"]
    assert half == ("0.47x (0.45-0.55)", "**no**")  # one round over 0.5x is not enough
    tail = rows["one impression, SQLite: p99 <= 3x the floor's"]
    assert tail == ("2.33x (1.67-4.00)", "yes")  # nor does one round over 3x fail it


def test_spread_visitors_give_every_visitor_of_a_batch_its_own_fresh_id(tmp_path: Path) -> None:
    one = json.loads(run.bodies(tmp_path, quick=True)[run.TEN].read_text())
    assert {v["visitor_id"] for v in one["visitors"]} == {"user-123"}  # the SDK example's
    spread = json.loads(run.bodies(tmp_path, quick=True, spread=True)[run.TEN].read_text())
    ids = [v["visitor_id"] for v in spread["visitors"]]
    assert ids == ["__UUID__"] * 10  # post.lua makes each occurrence a fresh uuid4
    events = [v["snapshots"][0]["events"][0]["uuid"] for v in spread["visitors"]]
    assert events == ["__UUID__"] * 10
    lua = (Path(run.__file__).parent / "post.lua").read_text()
    assert 'gsub("__UUID__", uuid4)' in lua  # a function: called for every occurrence
