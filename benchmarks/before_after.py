"""The core's own figures for two source trees, measured alternately in one run.

    python benchmarks/before_after.py BEFORE_TREE [AFTER_TREE] [--rounds 3]

Each round runs `inprocess.py`'s core figures (one SDK impression, and a batch of ten,
through `Endpoint.handle` on a memory journal; a 3.5 MB batch through a SQLite journal, and
`json.loads` of it) in a fresh process per tree, with that tree first on the path.
Rounds alternate the trees, so a busy moment of a shared machine hits both; figures are
the process's CPU time (a busy machine disturbs it less than wall time), and the best of
each tree is kept. AFTER_TREE defaults to this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
_FIGURES = """
import json, time, inprocess
inprocess.CLOCK = time.process_time
impression = inprocess.handle_us()
ten = inprocess.handle_us(1000, visitors=10)
ingest, loads = inprocess.ingest_ratio()
figures = {"impression_us": impression, "batch_of_ten_us": ten}
print(json.dumps({**figures, "ingest_ms": ingest * 1e3, "loads_ms": loads * 1e3}))
"""


def figures(tree: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE)])}
    out = subprocess.run(
        [sys.executable, "-c", _FIGURES], env=env, cwd=HERE, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path, nargs="?", default=HERE.parent)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    for _ in range(args.rounds):
        for name, tree in (("before", args.before), ("after", args.after)):
            for key, value in figures(tree).items():
                best[name][key] = min(value, best[name].get(key, value))
            print(name, {k: round(v, 1) for k, v in best[name].items()}, flush=True)
    print("| figure | before | after | after / before |")
    print("|---|---:|---:|---:|")
    for key in best["before"]:
        old, new = best["before"][key], best["after"][key]
        print(f"| {key} | {old:,.1f} | {new:,.1f} | {new / old:.2f}x |")
    for name in ("before", "after"):
        ratio = best[name]["ingest_ms"] / best[name]["loads_ms"]
        print(f"{name}: 3.5 MB ingest = {ratio:.2f}x json.loads")


if __name__ == "__main__":
    main()
