"""Wall time of ``budgetvakt demo`` end to end (broker start → worker ready → replay → stop).

Runs the demo as a user would (a subprocess, its own data dir) ``--runs`` times and prints each
run's wall time, the number of events, and the machine.

    .venv/bin/python -m bench.demo_time --runs 3
    .venv/bin/python -m bench.demo_time --runs 1     # the smoke run of the tests
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time

from bench.machine import describe
from testing.cli import run_cli


def run_once() -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="budgetvakt-demo-bench-") as data_dir:
        started = time.perf_counter()
        # Only the data dir is set: the user's own BUDGETVAKT_* settings (a broker, say) do not
        # reach the timed demo.
        proc = run_cli(
            "demo",
            env={"BUDGETVAKT_DATA_DIR": data_dir, "COLUMNS": "160"},
            inherit_settings=False,
            timeout_s=600,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"demo failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr}")
    events = re.search(r"Publicerade (\d+) händelser", proc.stdout)
    return wall, int(events.group(1)) if events else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    walls = []
    for i in range(args.runs):
        wall, events = run_once()
        walls.append(wall)
        print(f"run {i + 1}: {wall:.1f} s wall, {events} events published and aggregated")
    walls.sort()
    print(f"median {walls[len(walls) // 2]:.1f} s, max {walls[-1]:.1f} s (target: < 180 s)")


if __name__ == "__main__":
    main()
